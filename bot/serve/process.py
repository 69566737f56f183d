"""`lotse serve`: every configured chat channel, the periodic jobs and the HTTP server in one
process and event loop, sharing one conversation service.

Start: migrations (under an advisory lock on PostgreSQL), the knowledge base, the HTTP server
(so /healthz answers while the channels connect), the jobs runner, then the channels.
A channel runs when its settings are there: Telegram with `LOTSE_TELEGRAM_TOKEN` (webhook mode
with `LOTSE_TELEGRAM_WEBHOOK_URL`), Matrix with `LOTSE_MATRIX_HOMESERVER`.

Stop (SIGTERM, SIGINT): the channels stop taking updates and finish the ones under way, the
turns in flight get up to `DRAIN_SECONDS` in all, running jobs a moment to end, then the store
closes. Docker's default grace period is 10 s, so this fits in it. A turn cut off then (or by
SIGKILL) has its message stored without an answer: when Telegram starts again, on any instance,
its users get one (bot/serve/stranded.py); Matrix gets the message again from the homeserver.

Several instances may run against one PostgreSQL: turns of one user are serialised by the
store (advisory lock), jobs by their leases, and Telegram's webhook can go to any of them
(through a load balancer). Matrix has one sync stream per account, so it runs in the one
instance that holds the lease "channel:matrix" (bot/serve/leader.py); the others stand by.

A required channel that stays failed for `LOTSE_CHANNEL_FAILURE_EXIT_SECONDS` ends the process
with exit code 1: a restart policy (compose's `restart: unless-stopped`) then starts it afresh,
which is what a restart on an unhealthy /healthz would do.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from functools import partial

from aiohttp import web

from bot.app import App, build_app
from bot.channels.base import Channel, Stopper
from bot.channels.telegram import TelegramRunner
from bot.config import Settings
from bot.logs import configure_logging
from bot.serve.channels import BUILDERS, configured_channels, kind
from bot.serve.health import ChannelStatus, Health
from bot.serve.http import build_http_app
from bot.serve.jobs import Job, JobRunner, instance_id
from bot.serve.leader import ChannelLease, Leader, LeaseTiming
from bot.serve.stranded import sweep_job
from bot.tasks import cancel_and_wait

__all__ = [
    "DRAIN_SECONDS",
    "JOBS_GRACE_SECONDS",
    "MATRIX_LEASE_TIMING",
    "ChannelRunner",
    "configuration_problems",
    "periodic_jobs",
    "run_serve",
    "serve",
]

log = logging.getLogger(__name__)

DRAIN_SECONDS = 8.0  # for the channels' updates and the turns in flight, together
JOBS_GRACE_SECONDS = 1.0  # then running jobs are cancelled (their leases come back)
MATRIX_LEASE_TIMING = LeaseTiming()


def configuration_problems(settings: Settings, channels: list[str]) -> list[str]:
    """Settings that cannot work, for the channels that would run and the ticket mail and
    hand-back links (checked before anything starts, so a typo ends with exit code 2 and a
    message instead of a traceback from a half-started process)."""
    from bot.tickets.links import secret_problem
    from bot.tickets.smtp import SmtpUrlError, parse_smtp_url

    problems = [p for name in channels if (p := kind(name).configuration_problem(settings))]
    if settings.smtp_url is not None:
        try:
            parse_smtp_url(settings.smtp_url.get_secret_value())
        except SmtpUrlError as error:  # its message names the setting, never the URL
            problems.append(str(error))
    if (problem := secret_problem(settings)) is not None:
        problems.append(problem)
    return problems


def periodic_jobs(app: App) -> list[Job]:
    """The jobs every instance offers to run (leases decide which instance does)."""
    from bot.serve.ticket_jobs import ticket_jobs

    jobs = ticket_jobs(app.settings, app.tickets)
    if TelegramRunner.configured(app.settings):  # Matrix's homeserver sends them again itself
        jobs.append(sweep_job(app, TelegramRunner.name))
    return jobs


class ChannelRunner:
    """Start and stop one chat channel, keeping its `ChannelStatus` up to date."""

    def __init__(self, name: str, status: ChannelStatus) -> None:
        self.name = name
        self.status = status
        self.failed = asyncio.Event()
        self.failed_since: float | None = None  # time.monotonic() of the failure

    def fail(self, error: BaseException) -> None:
        # Only the class in /healthz: messages quote tokens (InvalidToken names it). The log
        # gets the traceback; its handler masks the configured secrets.
        self.status.state, self.status.detail = "failed", type(error).__name__
        log.error("the %s channel failed (%s)", self.name, self.status.detail, exc_info=error)
        self.failed_since = time.monotonic()
        self.failed.set()


async def _start(build: Callable[[App], Channel], app: App, runner: ChannelRunner) -> Stopper:
    """Start one channel; its stopper. A channel that cannot start is reported failed."""
    channel = build(app)
    try:
        await channel.start(runner.fail)
    except asyncio.CancelledError:  # stopped while connecting
        await channel.stop(0.1)
        raise
    except Exception as error:
        runner.fail(error)
        await channel.stop(0.1)
        return channel.stop
    if runner.status.state != "failed":
        runner.status.state, runner.status.detail = "running", channel.detail
    return channel.stop


async def _lead(
    start: Callable[[], Awaitable[Stopper]], runner: ChannelRunner, lease: ChannelLease
) -> Stopper:
    """A channel under its lease: running here, or standing by while another instance runs
    it."""
    leader = Leader(lease, runner.status, start, runner.failed)
    leader.begin()
    return leader.stop


async def serve(
    settings: Settings,
    *,
    only: str | None = None,
    http: bool = True,
    stop: asyncio.Event | None = None,
    matrix_lease: LeaseTiming = MATRIX_LEASE_TIMING,
) -> int:
    """Run until `stop` is set (SIGTERM/SIGINT set it); the exit code.

    `only` runs just that channel (`lotse telegram`, `lotse matrix`); then the process ends
    with 1 when that channel fails. `lotse serve` keeps serving the others, reports a failed
    channel in /healthz, and ends with 1 once a channel has been failing for
    `settings.channel_failure_exit_seconds`.
    """
    names = [name for name in configured_channels(settings) if only in (None, name)]
    problems = configuration_problems(settings, names)
    if only is not None and only not in names:
        problems.append(f"the {only} channel is not configured")
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        return 2
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    app = await build_app(settings)
    service = app.service
    health = Health(settings, service)
    health.follow_reloads()
    http_runner = await _start_http(settings, health) if http else None
    holder = instance_id()  # of the job leases and the Matrix lease alike
    jobs = JobRunner(service.store, periodic_jobs(app), holder=holder)
    jobs_task = asyncio.create_task(jobs.run_forever(), name="jobs")
    runners = [ChannelRunner(name, health.channel(name)) for name in names]
    stoppers: list[Stopper] = []
    exit_code = 0
    try:
        for runner in runners:
            start = partial(_start, BUILDERS[runner.name], app, runner)
            if kind(runner.name).needs_lease:
                lease = ChannelLease(service.store, f"channel:{runner.name}", holder, matrix_lease)
                stoppers.append(await _lead(start, runner, lease))
            else:
                stoppers.append(await start())
        log.info(
            "serving: channels %s; HTTP %s; jobs %s",
            ", ".join(f"{r.name} ({r.status.detail or r.status.state})" for r in runners)
            or "none (no chat channel configured)",
            f"on {settings.http_listen}:{settings.http_port}" if http_runner else "off",
            ", ".join(job.name for job in jobs.jobs) or "none",
        )
        if only is not None:
            waits = [_waiting(stop), *(_waiting(r.failed) for r in runners)]
            await _first(waits)
            exit_code = 1 if any(r.failed.is_set() for r in runners) else 0
        else:
            watchdog = asyncio.create_task(
                _end_when_failing(runners, settings.channel_failure_exit_seconds, stop)
            )
            await stop.wait()
            if watchdog.done():  # it set `stop`: a channel failed for too long
                exit_code = 1
            watchdog.cancel()
    finally:
        log.info("stopping: finishing the turns under way")
        started = time.monotonic()
        for runner in runners:
            if runner.status.state != "failed":
                runner.status.state = "stopping"
        await asyncio.gather(*(stopper(DRAIN_SECONDS) for stopper in stoppers))
        left = max(0.0, DRAIN_SECONDS - (time.monotonic() - started))
        if not await service.store.drain(left):
            # Their messages are stored: the next start of a channel answers them.
            log.warning(
                "%d turns still under way; stopping anyway (answered after the restart)",
                service.store.turns_in_flight,
            )
        await cancel_and_wait(jobs_task)
        await jobs.stop(JOBS_GRACE_SECONDS)
        if http_runner is not None:
            await http_runner.cleanup()
        for runner in runners:
            if runner.status.state != "failed":
                runner.status.state = "stopped"
        await app.close()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        log.info("stopped")
    return exit_code


async def _end_when_failing(
    runners: list[ChannelRunner], seconds: float, stop: asyncio.Event
) -> None:
    """Set `stop` once a channel has been failing for `seconds` (0: never)."""
    if seconds <= 0:
        await asyncio.Event().wait()  # until cancelled
    while True:
        now = time.monotonic()
        for runner in runners:
            if runner.failed_since is not None and now - runner.failed_since >= seconds:
                log.error(
                    "the %s channel has been failing for %.0f s; ending so that the process "
                    "is restarted",
                    runner.name,
                    now - runner.failed_since,
                )
                stop.set()
                return
        await asyncio.sleep(min(1.0, seconds / 4))


def _waiting(event: asyncio.Event) -> asyncio.Future[bool]:
    return asyncio.ensure_future(event.wait())


async def _first(waits: list[asyncio.Future[bool]]) -> None:
    _done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for waiting in pending:
        waiting.cancel()


async def _start_http(settings: Settings, health: Health) -> web.AppRunner:
    runner = web.AppRunner(build_http_app(health), handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.http_listen, settings.http_port)
    await site.start()
    return runner


def run_serve(settings: Settings, *, only: str | None = None, http: bool = True) -> int:
    """The console entry: logging as configured, then `serve` on a new event loop."""
    configure_logging(settings.log_format, settings.log_level, secrets=settings.secret_values())
    return asyncio.run(serve(settings, only=only, http=http))
