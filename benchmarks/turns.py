"""Turn latency and throughput through the conversation service, on SQLite and PostgreSQL.

100 simulated users walk through guides at once. Two measurements:

- throughput (closed loop): every user sends its next message as soon as the last one is
  answered; turns per second over the whole run.
- latency (open loop): the same 100 conversations go on, with messages arriving at a fixed
  rate (default 300/s, the target throughput) from users picked at random, as real traffic
  would; p50/p99 of the time from a message's arrival until its replies are ready, queueing
  included (the first phase has warmed up users and caches).

Set-ups, printed side by side: SQLite (one process); PostgreSQL with 1 and 2 instances (worker
processes on one throwaway cluster, started like the tests' `postgres_server`), and 1 instance
without the per-user turn lock, to show what the lock costs. With 2 instances each drives half
of the users in the closed loop and half the rate in the open loop, with users picked from all
100, so one user's messages reach both instances as behind a load balancer.

`cpu/turn` is the bot's own CPU time per turn in the closed loop (all instances, the database
server not included): on a busy shared machine it varies less than turns/s and latency.

Targets on the 2-core machines (SQLite): p99 under 15 ms and at least 300 turns/s.
Run: `.venv/bin/python -m benchmarks.turns [--users 100] [--rate 300] [--seconds 10]
[--sqlite-only]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bot.app import build_app
from bot.config import Settings
from bot.conversation import ConversationService
from bot.knowledge.loader import load_knowledge
from bot.knowledge.registry import KnowledgeRegistry
from bot.storage.store import Store
from bot.turns import Inbound

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


async def _service(url: str, *, turn_locks: bool = True) -> ConversationService:
    """The service as `lotse serve` builds it (`build_app`: the tickets' and hand-back links'
    turn middleware included), without the connection check (it would leave the machine) and
    on knowledge nothing reloads (a reload in the middle would be noise)."""
    settings = Settings(_env_file=None, database_url=url, knowledge_dir=KNOWLEDGE_DIR)
    store = await Store.open(url, turn_locks=turn_locks)
    registry = KnowledgeRegistry.fixed(load_knowledge(KNOWLEDGE_DIR))
    return (await build_app(settings, store=store, registry=registry, check=False)).service


def _mine(users: int, instance: int, instances: int) -> list[int]:
    return [number for number in range(users) if number % instances == instance]


async def closed_loop(
    service: ConversationService, numbers: list[int], turns: int
) -> tuple[float, int]:
    async def user(number: int) -> None:
        for turn in range(turns):
            text = SCRIPT[turn % len(SCRIPT)]
            await service.handle(Inbound("bench", f"user-{number}", text=text))

    started = time.perf_counter()
    await asyncio.gather(*(user(n) for n in numbers))
    return time.perf_counter() - started, len(numbers) * turns


async def open_loop(
    service: ConversationService, users: int, rate: float, seconds: float, seed: int = 7
) -> list[float]:
    rng = random.Random(seed)
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


@dataclass
class Result:
    setup: str
    turns: int
    elapsed: float  # closed loop, the slowest instance
    cpu: float  # closed loop, seconds of CPU time of all instances together
    latencies_ms: list[float]  # open loop, all instances

    def row(self) -> str:
        ms = self.latencies_ms
        return (
            f"{self.setup:<34} {self.turns / self.elapsed:>8.0f} {percentile(ms, 0.5):>8.1f} "
            f"{percentile(ms, 0.99):>8.1f} {max(ms):>8.1f} {self.cpu / self.turns * 1000:>8.2f}"
        )


async def worker(args: argparse.Namespace) -> None:
    """One instance: wait for "go" on stdin (so all start together), run, print JSON."""
    service = await _service(args.url, turn_locks=not args.no_turn_locks)
    try:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        numbers = _mine(args.users, args.instance, args.instances)
        cpu_before = time.process_time()
        elapsed, count = await closed_loop(service, numbers, args.turns)
        cpu = time.process_time() - cpu_before
        rate = args.rate / args.instances
        latencies = await open_loop(service, args.users, rate, args.seconds, 7 + args.instance)
    finally:
        await service.close()
    output = {"elapsed": elapsed, "cpu": cpu, "turns": count, "latencies": latencies}
    print(json.dumps(output), flush=True)


def run_instances(
    setup: str, url: str, instances: int, args: argparse.Namespace, *, turn_locks: bool = True
) -> Result:
    """`instances` worker processes on one database, started together."""
    command = [sys.executable, "-m", "benchmarks.turns", "--worker", "--url", url]
    command += ["--instances", str(instances), "--users", str(args.users)]
    command += ["--rate", str(args.rate), "--seconds", str(args.seconds)]
    command += ["--turns", str(args.turns)] + ([] if turn_locks else ["--no-turn-locks"])
    root = Path(__file__).resolve().parents[1]
    workers = [
        subprocess.Popen(
            [*command, "--instance", str(number)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=root,
        )
        for number in range(instances)
    ]
    for process in workers:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    for process in workers:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    outputs = [json.loads(process.communicate(timeout=600)[0]) for process in workers]
    return Result(
        setup,
        sum(output["turns"] for output in outputs),
        max(output["elapsed"] for output in outputs),
        sum(output["cpu"] for output in outputs),
        [value * 1000 for output in outputs for value in output["latencies"]],
    )


@contextmanager
def throwaway_postgres() -> Iterator[str | None]:
    """A PostgreSQL cluster as the tests start it (tests/servers/postgres.py); None without
    the binaries."""
    from tests.servers import postgres
    from tests.support import free_port

    bin_dir = postgres._find_bin_dir()
    if bin_dir is None:
        yield None
        return
    as_user = postgres._run_as()
    base = Path(tempfile.mkdtemp(prefix="lotse-bench-pg-"))
    if as_user:
        os.chown(base, *_ids(as_user[2]))
    data, port = base / "data", free_port()
    pg_ctl = [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data)]
    try:
        postgres._run(
            [*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
             "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"],
            timeout=120,
        )  # fmt: skip
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(postgres._SETTINGS.format(port=port, socket_dir=base))
            conf.write("max_connections = 200\n")  # 2 instances with full pools
        postgres._run([*pg_ctl, "-l", str(base / "log"), "-w", "-t", "60", "start"], timeout=90)
        server = postgres.PostgresServer("127.0.0.1", port, bin_dir, 0.0)
        server.run("createdb", "bench")
        yield server.url("bench")
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([*pg_ctl, "-w", "-m", "fast", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def _ids(user: str) -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


def _reset(url: str) -> None:
    """Empty the database between set-ups, so each starts with the same 100 new users."""

    async def truncate() -> None:
        store = await Store.open(url)
        await store.run(
            lambda conn: conn.exec_driver_sql("TRUNCATE users, conversations, messages CASCADE")
        )
        await store.close()

    asyncio.run(truncate())


def main(args: argparse.Namespace) -> None:
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{Path(directory) / 'bench.sqlite3'}"
        asyncio.run(_migrated(url))
        results.append(run_instances("SQLite, 1 instance", url, 1, args))
    if not args.sqlite_only:
        with throwaway_postgres() as pg_url:
            if pg_url is None:
                print("PostgreSQL binaries not found (apt-get install postgresql): SQLite only")
            else:
                asyncio.run(_migrated(pg_url))
                for setup, instances, locks in (
                    ("PostgreSQL, 1 instance", 1, True),
                    ("PostgreSQL, 1 instance, no turn lock", 1, False),
                    ("PostgreSQL, 2 instances", 2, True),
                ):
                    _reset(pg_url)
                    results.append(run_instances(setup, pg_url, instances, args, turn_locks=locks))
    print(
        f"{args.users} users; closed loop {args.turns} turns each; open loop "
        f"{args.rate:.0f} turns/s offered for {args.seconds:.0f} s (ms below)"
    )
    print(f"{'set-up':<34} {'turns/s':>8} {'p50':>8} {'p99':>8} {'max':>8} {'cpu/turn':>8}")
    for result in results:
        print(result.row())
    sqlite = results[0]
    p99 = percentile(sqlite.latencies_ms, 0.99)
    print(
        f"targets (SQLite): p99 < 15 ms -> {'met' if p99 < 15 else 'MISSED'}; "
        f">= 300 turns/s -> {'met' if sqlite.turns / sqlite.elapsed >= 300 else 'MISSED'}"
    )


async def _migrated(url: str) -> None:
    store = await Store.open(url)
    await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--turns", type=int, default=20, help="turns per user, closed loop")
    parser.add_argument("--sqlite-only", action="store_true")
    # Internal: one instance of a multi-process run.
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--instance", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--instances", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--no-turn-locks", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.worker:
        asyncio.run(worker(arguments))
    else:
        main(arguments)
