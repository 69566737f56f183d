"""Periodic jobs (mail queue, retention) shared by every instance through `job_leases`.

Each instance looks every `tick` seconds whether a job is due. A job runs where a lease is taken
by one conditional UPDATE (nobody holds an unexpired lease, and the last run finished at least
`every` seconds ago), so across all instances on one database the same job never runs twice
at once and runs once per `every`. An instance that dies mid-run leaves its lease to expire
(`timeout` + a margin); another instance then takes the job over. A failed run is tried again
after `retry_after` seconds, by whichever instance gets there first.

Clocks: lease times are the instances' UTC clocks, so instances should run NTP (seconds of skew
only shift when a job runs, never let two run at once while leases outlast the skew).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import Connection, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from bot import metrics
from bot.clock import utcnow
from bot.storage.store import Store
from bot.storage.tables import JobLease
from bot.tasks import cancel_and_wait

__all__ = ["LEASE_MARGIN", "Job", "JobRunner", "instance_id", "raise_if_cancelling", "take_lease"]

log = logging.getLogger(__name__)

LEASE_MARGIN = 30.0  # seconds a lease outlasts a run's timeout (cancellation, clock skew)


@dataclass(frozen=True)
class Job:
    name: str
    every: float  # seconds between the end of one run and the start of the next
    run: Callable[[], Awaitable[None]]
    timeout: float = 600.0  # a run taking longer is cancelled and counts as failed


def instance_id() -> str:
    """Who holds a lease: host, process and a random part (pids repeat in containers)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def raise_if_cancelling() -> None:
    """In an `except Exception` of a loop: end the loop if its task is being cancelled.

    A database driver cancelled mid-statement may wrap the CancelledError in an error of its
    own; a loop that logs errors and goes on would then outlive its own cancellation.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class JobRunner:
    def __init__(
        self,
        store: Store,
        jobs: Sequence[Job],
        *,
        holder: str | None = None,
        tick: float = 5.0,
        retry_after: float = 60.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        names = [job.name for job in jobs]
        if len(set(names)) != len(names):
            raise ValueError(f"job names must be unique: {names}")
        self.store = store
        self.jobs = list(jobs)
        self.holder = holder or instance_id()
        self.tick = tick
        self.retry_after = retry_after
        self.clock = clock  # what leases and intervals are measured by
        self._running: dict[str, asyncio.Task[None]] = {}

    async def run_due(self) -> list[str]:
        """Start every due job whose lease this instance gets; their names."""
        started = []
        for job in self.jobs:
            if job.name in self._running:
                continue
            if await self.store.run(take_lease, job, self.holder, self.clock()):
                task = asyncio.create_task(self._run(job), name=f"job {job.name}")
                self._running[job.name] = task
                task.add_done_callback(partial(self._forget, job.name))
                started.append(job.name)
        return started

    def _forget(self, name: str, _task: asyncio.Task[None]) -> None:
        self._running.pop(name, None)

    async def run_forever(self) -> None:
        """Look for due jobs every `tick` seconds until cancelled (then see `stop`)."""
        while True:
            try:
                await self.run_due()
            except Exception:  # the database is away: try again next tick
                raise_if_cancelling()
                log.exception("looking for due jobs failed")
                metrics.ERRORS.labels("jobs").inc()
            await asyncio.sleep(self.tick)

    async def stop(self, wait: float = 10.0) -> None:
        """Let running jobs finish for up to `wait` seconds, then cancel them."""
        tasks = list(self._running.values())
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=wait)
        await cancel_and_wait(*pending)

    async def _run(self, job: Job) -> None:
        finished = False
        try:
            await asyncio.wait_for(job.run(), job.timeout)
            finished = True
        except TimeoutError:
            log.error("job %s took longer than %.0f s; cancelled", job.name, job.timeout)
            metrics.ERRORS.labels("job").inc()
        except asyncio.CancelledError:
            log.warning("job %s cancelled at shutdown", job.name)
            raise
        except Exception:
            log.exception("job %s failed; trying again in %.0f s", job.name, self.retry_after)
            metrics.ERRORS.labels("job").inc()
        finally:
            # Shielded: a cancelled run must still give its lease back.
            with suppress(Exception):
                await asyncio.shield(
                    self.store.run(
                        _release, job.name, self.holder, self.clock(), finished, self.retry_after
                    )
                )


# --- the transactions -------------------------------------------------------------------


def take_lease(conn: Connection, job: Job, holder: str, now: datetime) -> bool:
    if conn.execute(select(JobLease.name).where(JobLease.name == job.name)).first() is None:
        with suppress(IntegrityError), conn.begin_nested():  # another instance was first
            conn.execute(insert(JobLease).values(name=job.name))
    # One conditional UPDATE: of two instances trying at once, PostgreSQL lets the second
    # re-check the condition on the row the first wrote, so only one gets rowcount 1.
    taken = conn.execute(
        update(JobLease)
        .where(
            JobLease.name == job.name,
            or_(JobLease.leased_until.is_(None), JobLease.leased_until < now),
            or_(
                JobLease.last_finished_at.is_(None),
                JobLease.last_finished_at <= now - timedelta(seconds=job.every),
            ),
        )
        .values(holder=holder, leased_until=now + timedelta(seconds=job.timeout + LEASE_MARGIN))
    )
    return taken.rowcount == 1


def _release(
    conn: Connection, name: str, holder: str, now: datetime, finished: bool, retry_after: float
) -> None:
    values: dict[str, object] = {"holder": None}
    if finished:
        values.update(leased_until=None, last_finished_at=now)
    else:  # nobody tries again before `retry_after`
        values["leased_until"] = now + timedelta(seconds=retry_after)
    conn.execute(
        update(JobLease).where(JobLease.name == name, JobLease.holder == holder).values(**values)
    )
