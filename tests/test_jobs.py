"""Periodic jobs shared by several instances through `job_leases`: never twice at once, once per
interval, taken over when an instance dies, retried after a failure. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from bot.serve.jobs import Job, JobRunner, _take_lease
from bot.storage.store import Store
from bot.storage.tables import utcnow


@dataclass
class Recorder:
    """A job body that notes when each run started and ended, and who ran it."""

    seconds: float = 0.05
    runs: list[tuple[str, float, float]] = field(default_factory=list)
    failures_left: int = 0

    def job_for(self, who: str, name: str = "purge", every: float = 0.3) -> Job:
        async def run() -> None:
            started = time.monotonic()
            await asyncio.sleep(self.seconds)
            if self.failures_left > 0:
                self.failures_left -= 1
                raise RuntimeError("the mail server said no")
            self.runs.append((who, started, time.monotonic()))

        return Job(name, every, run)


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, sqlite_url: str) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield sqlite_url
    else:
        yield request.getfixturevalue("postgres_url")


async def _two_instances(url: str, recorder: Recorder, seconds: float, **options: float) -> None:
    """Two runners, each with its own store (as two processes have), for `seconds`."""
    stores = [await Store.open(url), await Store.open(url)]
    runners = [
        JobRunner(store, [recorder.job_for(who)], holder=who, tick=0.01, **options)
        for who, store in zip(("a", "b"), stores, strict=True)
    ]
    loops = [asyncio.create_task(runner.run_forever()) for runner in runners]
    await asyncio.sleep(seconds)
    for loop in loops:
        loop.cancel()
    for runner in runners:
        await runner.stop()
    for store in stores:
        await store.close()


async def test_two_instances_never_run_a_job_twice_at_once_and_run_it_once_per_interval(
    database_url: str,
) -> None:
    recorder = Recorder()
    await _two_instances(database_url, recorder, 1.6)

    runs = sorted(recorder.runs, key=lambda run: run[1])
    # 0.05 s run + 0.3 s pause: a run at 0 s, ~0.35, ~0.7, ~1.05, ~1.4 -> 4 or 5 in 1.6 s.
    assert 3 <= len(runs) <= 5, runs  # 3 when the machine is busy
    for (_, _, ended), (_, next_started, _) in itertools.pairwise(runs):
        assert next_started >= ended, "two runs overlapped"
        assert next_started - ended >= 0.29, "a run came before the interval was over"


async def test_a_failed_run_is_tried_again_after_the_retry_delay_not_at_once(
    database_url: str,
) -> None:
    recorder = Recorder(failures_left=1)
    await _two_instances(database_url, recorder, 0.5, retry_after=0.3)
    # Failed at ~0.05 s; retried at ~0.35 s (by either instance), not on the next 0.01 s tick.
    assert len(recorder.runs) == 1
    assert recorder.failures_left == 0


async def test_the_lease_of_an_instance_that_died_expires_and_another_takes_the_job_over(
    sqlite_url: str,
) -> None:
    store = await Store.open(sqlite_url)
    recorder = Recorder()
    dead = Job("purge", 3600, recorder.job_for("dead").run, timeout=-29.5)  # lease: 0.5 s
    assert await store.run(_take_lease, dead, "dead-instance", utcnow())

    runner = JobRunner(store, [recorder.job_for("alive", every=3600)], holder="alive", tick=0.01)
    assert await runner.run_due() == []  # the lease still holds
    await asyncio.sleep(0.6)
    assert await runner.run_due() == ["purge"]
    await runner.stop()
    assert [who for who, _, _ in recorder.runs] == ["alive"]
    assert await runner.run_due() == []  # finished now: due again in an hour
    await store.close()


async def test_stop_waits_for_a_running_job_then_cancels_it_and_gives_the_lease_back(
    sqlite_url: str,
) -> None:
    store = await Store.open(sqlite_url)
    recorder = Recorder(seconds=5)
    runner = JobRunner(store, [recorder.job_for("a")], holder="a")
    assert await runner.run_due() == ["purge"]
    started = time.monotonic()
    await runner.stop(wait=0.2)
    assert time.monotonic() - started < 1
    assert recorder.runs == []
    # Released without counting as finished: the next instance may run it (after retry_after).
    other = JobRunner(store, [recorder.job_for("b")], holder="b", retry_after=0)
    later = utcnow() + timedelta(seconds=61)
    assert await store.run(_take_lease, other.jobs[0], "b", later)
    await store.close()


def test_job_names_must_be_unique() -> None:
    async def nothing() -> None:
        pass

    with pytest.raises(ValueError, match="unique"):
        JobRunner(None, [Job("mail", 30, nothing), Job("mail", 60, nothing)])  # type: ignore[arg-type]
