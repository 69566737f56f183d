"""One instance runs a channel that must not run twice, through a lease in `job_leases`.

Matrix has one sync stream per account and one device with one encryption store: two instances
syncing would answer every message twice and race on the store. So every instance with Matrix
configured competes for the lease "channel:matrix"; the one that gets it runs the channel and
renews the lease every `renew` seconds; the others stand by (healthy, state "standby") and try
again every `retry` seconds. The holder gives the lease back when it stops; when it dies
instead, the lease runs out after `ttl` seconds and a standby instance takes over.

A holder that cannot renew (database away) stops its channel once its lease has run out, since
another instance may hold it by then. A channel that failed gives its lease back and does not
compete again in this process (`lotse serve` ends after a while and is restarted); another
instance may have better luck.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from bot.clock import utcnow
from bot.serve.health import ChannelStatus
from bot.serve.jobs import raise_if_cancelling
from bot.storage.store import Store
from bot.storage.tables import JobLease
from bot.tasks import cancel_and_wait

__all__ = ["ChannelLease", "Leader", "LeaseTiming", "Stopper"]

log = logging.getLogger(__name__)

Stopper = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class LeaseTiming:
    ttl: float = 30.0  # seconds a lease holds without renewal (how long a dead holder blocks)
    renew: float = 10.0  # the holder renews this often
    retry: float = 5.0  # a standby instance tries to take the lease this often


class ChannelLease:
    """The lease named `name` for the instance `holder` (take, renew, give back)."""

    def __init__(self, store: Store, name: str, holder: str, timing: LeaseTiming) -> None:
        self.store, self.name, self.holder, self.timing = store, name, holder, timing

    async def take(self) -> bool:
        """Take the lease or renew it; whether this instance holds it now."""
        taken: bool = await self.store.run(
            _take_or_renew, self.name, self.holder, utcnow(), self.timing.ttl
        )
        return taken

    async def give_back(self) -> None:
        await self.store.run(_give_back, self.name, self.holder)


class Leader:
    """Run a channel (`start` gives its stopper) only while this instance holds the lease."""

    def __init__(
        self,
        lease: ChannelLease,
        status: ChannelStatus,
        start: Callable[[], Awaitable[Stopper]],
        failed: asyncio.Event,
    ) -> None:
        self.lease, self.status, self.start, self.failed = lease, status, start, failed
        self._stop_channel: Stopper | None = None
        self._task: asyncio.Task[None] | None = None
        self._drain = 0.0

    def begin(self) -> None:
        self._task = asyncio.create_task(self._lead(), name=f"lease {self.lease.name}")

    async def stop(self, within: float) -> None:
        """Stop the channel (its work under way gets `within` seconds), give the lease back."""
        self._drain = within
        await cancel_and_wait(self._task)

    async def _lead(self) -> None:
        timing = self.lease.timing
        held_until = 0.0  # monotonic time until which the lease surely holds
        try:
            while not self.failed.is_set():
                asked = time.monotonic()
                try:
                    holding: bool | None = await self.lease.take()
                except Exception as error:  # the database is away: decide by the clock
                    raise_if_cancelling()
                    log.warning("the %s lease could not be renewed (%s)", self.lease.name, error)
                    holding = None
                if holding:
                    held_until = asked + timing.ttl
                running = self._stop_channel is not None
                if holding and not running:
                    log.info("took the %s lease; starting the channel", self.lease.name)
                    self.status.state = "starting"
                    self._stop_channel = await self.start()
                elif (
                    running and not holding and (holding is False or time.monotonic() > held_until)
                ):
                    log.warning("lost the %s lease; the channel stands by", self.lease.name)
                    await self._stop(timing.renew)
                if self._stop_channel is None and not self.failed.is_set():
                    self.status.state, self.status.detail = "standby", None
                with suppress(TimeoutError):
                    wait = timing.renew if self._stop_channel is not None else timing.retry
                    await asyncio.wait_for(self.failed.wait(), wait)
            # Failed: let another instance try; this one does not compete again.
            log.warning("the channel under the %s lease failed; giving it back", self.lease.name)
            await self._stop(0.1)
            await self._give_back()
        except asyncio.CancelledError:
            await self._stop(self._drain)
            await self._give_back()
            raise

    async def _stop(self, within: float) -> None:
        stop_channel, self._stop_channel = self._stop_channel, None
        if stop_channel is not None:
            await stop_channel(within)

    async def _give_back(self) -> None:
        try:
            await self.lease.give_back()
        except Exception as error:  # it runs out after `ttl` instead
            log.warning("giving the %s lease back failed (%s)", self.lease.name, error)


# --- the transactions -------------------------------------------------------------------


def _take_or_renew(conn: Connection, name: str, holder: str, now: datetime, ttl: float) -> bool:
    if conn.execute(select(JobLease.name).where(JobLease.name == name)).first() is None:
        with suppress(IntegrityError), conn.begin_nested():  # another instance was first
            conn.execute(insert(JobLease).values(name=name))
    # One conditional UPDATE (as jobs.py's `take_lease`): of two instances at once, only
    # one gets rowcount 1.
    taken = conn.execute(
        update(JobLease)
        .where(
            JobLease.name == name,
            or_(
                JobLease.holder == holder,
                JobLease.leased_until.is_(None),
                JobLease.leased_until < now,
            ),
        )
        .values(holder=holder, leased_until=now + timedelta(seconds=ttl))
    )
    return taken.rowcount == 1


def _give_back(conn: Connection, name: str, holder: str) -> None:
    conn.execute(
        update(JobLease)
        .where(JobLease.name == name, JobLease.holder == holder)
        .values(holder=None, leased_until=None)
    )
