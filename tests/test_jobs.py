"""Periodic jobs shared by several instances through `job_leases`: never twice at once, once per
interval, taken over when an instance dies, retried after a failure. The Matrix channel's lease
in the same table: one instance runs the channel, another takes over. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from sqlalchemy import update

from bot.serve.health import ChannelStatus
from bot.serve.jobs import Job, JobRunner, take_lease
from bot.serve.leader import ChannelLease, Leader, LeaseTiming, Stopper
from bot.storage.store import Store
from bot.storage.tables import JobLease, utcnow
from tests.support import wait_until


@dataclass
class Recorder:
    """A job body that notes when each run started and ended, and who ran it."""

    seconds: float = 0.05
    runs: list[tuple[str, float, float]] = field(default_factory=list)
    failures_left: int = 0
    failed_at: list[float] = field(default_factory=list)  # when each failed run ended

    def job_for(self, who: str, name: str = "purge", every: float = 0.3) -> Job:
        async def run() -> None:
            started = time.monotonic()
            await asyncio.sleep(self.seconds)
            if self.failures_left > 0:
                self.failures_left -= 1
                self.failed_at.append(time.monotonic())
                raise RuntimeError("the mail server said no")
            self.runs.append((who, started, time.monotonic()))

        return Job(name, every, run)


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, sqlite_url: str) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield sqlite_url
    else:
        yield request.getfixturevalue("postgres_url")


async def _two_instances(
    url: str, recorder: Recorder, until: Callable[[], Awaitable[object]], **options: float
) -> None:
    """Two runners, each with its own store (as two processes have), until `until()` ends."""
    stores = [await Store.open(url), await Store.open(url)]
    runners = [
        JobRunner(store, [recorder.job_for(who)], holder=who, tick=0.01, **options)
        for who, store in zip(("a", "b"), stores, strict=True)
    ]
    loops = [asyncio.create_task(runner.run_forever()) for runner in runners]
    await until()
    for loop in loops:
        loop.cancel()
    for loop in loops:
        with suppress(asyncio.CancelledError):
            await loop
    for runner in runners:
        await runner.stop()
    for store in stores:
        await store.close()


async def test_two_instances_never_run_a_job_twice_at_once_and_run_it_once_per_interval(
    database_url: str,
) -> None:
    recorder = Recorder()
    await _two_instances(database_url, recorder, lambda: asyncio.sleep(1.6))  # the window

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

    async def retried() -> None:
        await wait_until(lambda: recorder.runs, "the run after the failed one")

    await _two_instances(database_url, recorder, retried, retry_after=0.3)
    # Retried after the 0.3 s delay (by either instance), not on the next 0.01 s tick.
    (failed_at,) = recorder.failed_at
    _who, retried_at, _ended = recorder.runs[0]
    assert retried_at - failed_at >= 0.29, "retried before the delay was over"
    assert recorder.failures_left == 0


async def test_the_lease_of_an_instance_that_died_expires_and_another_takes_the_job_over(
    sqlite_url: str,
) -> None:
    store = await Store.open(sqlite_url)
    recorder = Recorder()
    dead = Job("purge", 3600, recorder.job_for("dead").run, timeout=-29.5)  # lease: 0.5 s
    assert await store.run(take_lease, dead, "dead-instance", utcnow())

    runner = JobRunner(store, [recorder.job_for("alive", every=3600)], holder="alive", tick=0.01)
    assert await runner.run_due() == []  # the lease still holds
    await asyncio.sleep(0.6)  # the dead instance's lease runs out by the clock: no event
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
    assert await store.run(take_lease, other.jobs[0], "b", later)
    await store.close()


def test_job_names_must_be_unique() -> None:
    async def nothing() -> None:
        pass

    with pytest.raises(ValueError, match="unique"):
        JobRunner(None, [Job("mail", 30, nothing), Job("mail", 60, nothing)])  # type: ignore[arg-type]


# --- the Matrix channel's lease (one instance runs it, another takes over) ---------------

FAST = LeaseTiming(ttl=0.6, renew=0.1, retry=0.05)


@dataclass
class Channel:
    """What `lotse serve` hands a `Leader`: a start hook that runs the channel, its status."""

    instance: str
    log: list[str]
    status: ChannelStatus = field(default_factory=lambda: ChannelStatus("matrix"))
    failed: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> Stopper:
        self.log.append(f"{self.instance} starts")
        self.status.state = "running"

        async def stop(_within: float) -> None:
            self.log.append(f"{self.instance} stops")

        return stop

    def running(self) -> bool:
        return self.status.state == "running"


async def test_of_two_instances_one_runs_the_channel_and_the_other_takes_over_when_it_stops(
    database_url: str,
) -> None:
    stores = [await Store.open(database_url), await Store.open(database_url)]
    log: list[str] = []
    a, b = Channel("a", log), Channel("b", log)
    leaders = [
        Leader(ChannelLease(store, "channel:matrix", who, FAST), c.status, c.start, c.failed)
        for who, store, c in zip(("a", "b"), stores, (a, b), strict=True)
    ]
    leaders[0].begin()
    await wait_until(a.running, "a running")
    leaders[1].begin()
    await wait_until(lambda: b.status.state == "standby", "b standing by")
    # a renews: b never starts meanwhile. Only time shows it (a lease that is not renewed
    # runs out by the clock; nothing signals one that is), so this waits out two TTLs.
    await asyncio.sleep(FAST.ttl * 2)
    assert (a.status.state, b.status.state) == ("running", "standby")
    assert a.status.ok and b.status.ok  # standby is healthy

    await leaders[0].stop(1.0)  # gives the lease back: b takes over at its next try
    await wait_until(b.running, "b running", within=FAST.retry * 10)
    assert log == ["a starts", "a stops", "b starts"]
    await leaders[1].stop(1.0)
    for store in stores:
        await store.close()


async def test_the_lease_of_an_instance_that_died_runs_out_and_another_runs_the_channel(
    database_url: str,
) -> None:
    store = await Store.open(database_url)
    dead = ChannelLease(store, "channel:matrix", "dead", FAST)
    assert await dead.take()  # and then it never renews nor gives back
    log: list[str] = []
    alive = Channel("alive", log)
    lease = ChannelLease(store, "channel:matrix", "alive", FAST)
    leader = Leader(lease, alive.status, alive.start, alive.failed)
    started = time.monotonic()
    leader.begin()
    await wait_until(alive.running, "the takeover")
    assert time.monotonic() - started >= FAST.ttl * 0.8
    assert not await dead.take()  # the dead one, back again, stands by
    await leader.stop(1.0)
    await store.close()


async def test_a_holder_that_lost_its_lease_stops_its_channel(sqlite_url: str) -> None:
    store = await Store.open(sqlite_url)
    log: list[str] = []
    a = Channel("a", log)
    leader = Leader(ChannelLease(store, "channel:matrix", "a", FAST), a.status, a.start, a.failed)
    leader.begin()
    await wait_until(a.running, "a running")
    # Another instance holds it now (a's lease ran out while its database was away).
    await store.run(
        lambda conn: conn.execute(
            update(JobLease)
            .where(JobLease.name == "channel:matrix")
            .values(holder="b", leased_until=utcnow() + timedelta(seconds=60))
        )
    )
    await wait_until(lambda: a.status.state == "standby", "a standing by")
    assert log == ["a starts", "a stops"]
    await leader.stop(1.0)
    await store.close()


async def test_a_channel_that_failed_gives_its_lease_back_for_another_instance(
    sqlite_url: str,
) -> None:
    store = await Store.open(sqlite_url)
    log: list[str] = []
    a = Channel("a", log)
    leader = Leader(ChannelLease(store, "channel:matrix", "a", FAST), a.status, a.start, a.failed)
    leader.begin()
    await wait_until(a.running, "a running")
    a.status.state = "failed"  # as ChannelRunner.fail does
    a.failed.set()
    other = ChannelLease(store, "channel:matrix", "b", FAST)
    await wait_until(lambda: "a stops" in log, "a giving up")
    assert await other.take()  # at once, not after the lease ran out
    assert a.status.state == "failed"  # and a stays failed (its process ends later)
    await leader.stop(1.0)
    await store.close()


class _DriverThatWrapsCancellation:
    """A store whose driver, cancelled mid-statement, raises its own error instead (as asyncpg
    under SQLAlchemy can: "connection was closed in the middle of operation")."""

    def __init__(self) -> None:
        self.wrapped = False
        self.entered = asyncio.Event()  # a statement is under way

    async def run(self, *_args: object) -> bool:
        self.entered.set()
        if self.wrapped:  # once is enough to show it (and lets a broken loop still end)
            return False
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            self.wrapped = True
            raise ConnectionError("connection was closed in the middle of operation") from None
        return False


async def test_a_runner_loop_ends_when_cancelled_even_if_the_driver_wraps_the_cancellation() -> (
    None
):
    driver = _DriverThatWrapsCancellation()
    runner = JobRunner(
        driver,  # type: ignore[arg-type]
        [Recorder().job_for("a")],
        holder="a",
        tick=0.01,
    )
    loop = asyncio.create_task(runner.run_forever())
    await driver.entered.wait()  # mid-statement
    loop.cancel()
    await asyncio.wait({loop}, timeout=2)
    assert loop.cancelled(), "the loop went on after its cancellation"
