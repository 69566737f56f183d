"""Periodic jobs shared by several instances through `job_leases`: never twice at once, once per
interval, taken over when an instance dies, retried after a failure. The Matrix channel's lease
in the same table: one instance runs the channel, another takes over. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from sqlalchemy import update

from bot.clock import utcnow
from bot.serve.health import ChannelStatus
from bot.serve.jobs import LEASE_MARGIN, Job, JobRunner, take_lease
from bot.serve.leader import ChannelLease, Leader, LeaseTiming, Stopper
from bot.storage.store import Store
from bot.storage.tables import JobLease
from tests.support import StepClock, wait_until


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


@asynccontextmanager
async def _two_instances(
    url: str, recorder: Recorder, clock: StepClock, **options: float
) -> AsyncIterator[list[JobRunner]]:
    """Two runners on one clock, each with its own store (as two processes have)."""
    stores = [await Store.open(url), await Store.open(url)]
    runners = [
        JobRunner(store, [recorder.job_for(who)], holder=who, clock=clock, **options)
        for who, store in zip(("a", "b"), stores, strict=True)
    ]
    try:
        yield runners
    finally:
        for runner in runners:
            await runner.stop()
        for store in stores:
            await store.close()


async def _both_look(runners: list[JobRunner]) -> list[str]:
    """Both instances look for due jobs at the same moment; the jobs started, by either."""
    started = await asyncio.gather(*(runner.run_due() for runner in runners))
    return [name for names in started for name in names]


async def _finish(runners: list[JobRunner]) -> None:
    for runner in runners:
        await runner.stop()  # waits for a running job and its lease's release


async def test_of_two_instances_looking_at_once_only_one_runs_a_due_job_and_only_once_per_interval(
    database_url: str,
) -> None:
    recorder, clock = Recorder(), StepClock()
    async with _two_instances(database_url, recorder, clock) as runners:
        assert await _both_look(runners) == ["purge"]
        assert await _both_look(runners) == []  # running, or finished just now
        await _finish(runners)
        clock.advance(0.29)
        assert await _both_look(runners) == []  # the 0.3 s interval is not over
        clock.advance(0.02)
        assert await _both_look(runners) == ["purge"]
        await _finish(runners)
    assert len(recorder.runs) == 2


async def test_a_failed_run_is_tried_again_after_the_retry_delay_not_at_once(
    database_url: str,
) -> None:
    recorder, clock = Recorder(failures_left=1), StepClock()
    async with _two_instances(database_url, recorder, clock, retry_after=60) as runners:
        assert await _both_look(runners) == ["purge"]
        await _finish(runners)
        assert recorder.failed_at and not recorder.runs
        clock.advance(59)
        assert await _both_look(runners) == []  # by either instance: the delay is not over
        clock.advance(2)
        assert await _both_look(runners) == ["purge"]
        await _finish(runners)
    assert len(recorder.runs) == 1 and recorder.failures_left == 0


async def test_the_lease_of_an_instance_that_died_expires_and_another_takes_the_job_over(
    sqlite_url: str,
) -> None:
    store = await Store.open(sqlite_url)
    recorder, clock = Recorder(), StepClock()
    job = recorder.job_for("alive", every=3600)
    assert await store.run(take_lease, job, "dead-instance", clock())  # and then it died

    runner = JobRunner(store, [job], holder="alive", clock=clock)
    assert await runner.run_due() == []  # the lease still holds
    clock.advance(job.timeout + LEASE_MARGIN + 1)  # it runs out by the clock: no event
    assert await runner.run_due() == ["purge"]
    await runner.stop()
    assert [who for who, _, _ in recorder.runs] == ["alive"]
    assert await runner.run_due() == []  # finished now: due again in an hour
    await store.close()


async def test_stop_waits_for_a_running_job_then_cancels_it_and_gives_the_lease_back(
    sqlite_url: str,
) -> None:
    store = await Store.open(sqlite_url)
    recorder, clock = Recorder(seconds=5), StepClock()
    runner = JobRunner(store, [recorder.job_for("a")], holder="a", clock=clock)
    assert await runner.run_due() == ["purge"]
    started = time.monotonic()
    await runner.stop(wait=0.2)
    assert time.monotonic() - started < 1
    assert recorder.runs == []
    # Released without counting as finished: the next instance may run it after retry_after.
    other = JobRunner(store, [recorder.job_for("b")], holder="b", clock=clock)
    assert await other.run_due() == []
    clock.advance(61)
    assert await other.run_due() == ["purge"]
    await other.stop(wait=0.2)
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
