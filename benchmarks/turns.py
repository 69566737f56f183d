"""Turn latency and throughput through the conversation service on SQLite.

100 simulated users walk through guides at once. Two measurements:

- throughput (closed loop): every user sends its next message as soon as the last one is
  answered; turns per second over the whole run.
- latency (open loop): the same 100 conversations go on, with messages arriving at a fixed
  rate (default 300/s, the target throughput) from users picked at random, as real traffic
  would; p50/p99 of the time from a message's arrival until its replies are ready, queueing
  included (the first phase has warmed up users and caches).

Targets on the 2-core machines: p99 under 15 ms and at least 300 turns/s.
Run: `.venv/bin/python -m benchmarks.turns [--users 100] [--rate 300] [--seconds 10]`.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path

from bot.conversation import ConversationService, Inbound
from bot.knowledge.loader import load_knowledge
from bot.storage.store import Store
from bot.understanding.lexicon import LexiconUnderstander

KNOWLEDGE_DIR = Path(__file__).resolve().parents[1] / "knowledge"

# What one user says, over and over: greeting, program, every step, a question, a restart.
SCRIPT = [
    "Hallo",
    "outlok 2013",
    "IMAP",
    "weiter",
    "zurück",
    "weiter",
    "welche Ports?",
    "weiter",
    "weiter",
    "weiter",
    "danke",
    "von vorne",
    "ich hab ein Samsung Handy",
    "weiter",
    "weiter",
    "nochmal",
    "weiter",
    "weiter",
    "weiter",
    "weiter",
    "Thunderbird 128",
    "2",
    "von vorne",
]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _service(directory: Path) -> ConversationService:
    knowledge = load_knowledge(KNOWLEDGE_DIR)
    store = await Store.open(f"sqlite:///{directory / 'bench.sqlite3'}")
    return ConversationService(store, knowledge, LexiconUnderstander(knowledge))


async def closed_loop(service: ConversationService, users: int, turns: int) -> tuple[float, int]:
    async def user(number: int) -> None:
        for turn in range(turns):
            text = SCRIPT[turn % len(SCRIPT)]
            await service.handle(Inbound("bench", f"user-{number}", text=text))

    started = time.perf_counter()
    await asyncio.gather(*(user(n) for n in range(users)))
    return time.perf_counter() - started, users * turns


async def open_loop(
    service: ConversationService, users: int, rate: float, seconds: float
) -> list[float]:
    rng = random.Random(7)
    positions = [0] * users
    latencies: list[float] = []
    pending: set[asyncio.Task[None]] = set()

    async def turn(number: int, text: str, arrived: float) -> None:
        await service.handle(Inbound("bench", f"user-{number}", text=text))
        latencies.append(time.perf_counter() - arrived)

    loop_start = time.perf_counter()
    next_arrival = loop_start
    while next_arrival - loop_start < seconds:
        await asyncio.sleep(max(0.0, next_arrival - time.perf_counter()))
        number = rng.randrange(users)
        text = SCRIPT[positions[number] % len(SCRIPT)]
        positions[number] += 1
        task = asyncio.create_task(turn(number, text, next_arrival))
        pending.add(task)
        task.add_done_callback(pending.discard)
        next_arrival += rng.expovariate(rate)
    await asyncio.gather(*pending)
    return latencies


async def main(users: int, rate: float, seconds: float, turns: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        service = await _service(Path(directory))
        try:
            elapsed, count = await closed_loop(service, users, turns)
            print(
                f"throughput (closed loop, {users} users x {turns} turns): {count} turns "
                f"in {elapsed:.2f} s = {count / elapsed:.0f} turns/s"
            )
            latencies = await open_loop(service, users, rate, seconds)
            ms = [value * 1000 for value in latencies]
            print(
                f"latency (open loop, {rate:.0f} turns/s offered to {users} users, "
                f"{len(ms)} turns): p50 {percentile(ms, 0.5):.1f} ms, "
                f"p99 {percentile(ms, 0.99):.1f} ms, max {max(ms):.1f} ms, "
                f"mean {statistics.fmean(ms):.1f} ms"
            )
            print(
                f"targets: p99 < 15 ms -> {'met' if percentile(ms, 0.99) < 15 else 'MISSED'}; "
                f">= 300 turns/s -> {'met' if count / elapsed >= 300 else 'MISSED'}"
            )
        finally:
            await service.store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--turns", type=int, default=20, help="turns per user, closed loop")
    args = parser.parse_args()
    asyncio.run(main(args.users, args.rate, args.seconds, args.turns))
