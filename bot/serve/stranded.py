"""Answering the messages a stopped or killed instance left unanswered.

A turn stores the user's message first (`begin_turn`) and saves state and replies at its end
(`finish_turn`). An instance stopped while a turn runs (SIGTERM after the drain time, SIGKILL, a
crash; a slow check or a slow Rasa make that likely) leaves the message stored without a saved
turn after it. Telegram has already confirmed the update (the next `getUpdates` or the webhook's
200 did), so nobody would answer it: when the Telegram channel starts, its users with such a
message get their answer (see `ConversationService.answer_stranded` for what they get, by the
message's age), sent through the sender the channel registered for agents' answers. Several
instances may do this at once: each user's answer is saved under the user's turn lock and
version check, so one of them answers and the others find it answered. A periodic job does the
same for messages at least two minutes old, for cut-off turns of an instance that does not
start again.

Matrix needs none of this: its sync token is saved only once every message up to it has been
answered, so the homeserver delivers a cut-off message again after the restart (see
bot/channels/matrix.py); answering it here as well would answer it twice. The console cannot
speak first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress
from datetime import datetime, timedelta

from bot import metrics
from bot.app import App
from bot.clock import utcnow
from bot.conversation import STRANDED_NOTICE_WITHIN, ConversationService
from bot.serve.jobs import Job, raise_if_cancelling
from bot.serve.leader import Stopper
from bot.tickets.service import UserSender

__all__ = [
    "CONCURRENCY",
    "SWEEP_EVERY",
    "SWEEP_MIN_AGE",
    "answer_stranded",
    "start_answering_stranded",
    "sweep_job",
]

log = logging.getLogger(__name__)

CONCURRENCY = 4  # users answered at once (each holds a turn connection on PostgreSQL)
SWEEP_EVERY = 60.0  # seconds
# The sweep leaves younger messages alone: their turn may still be under way on an instance
# that runs it without the user's lock (all turn connections busy, see Store.turn).
SWEEP_MIN_AGE = timedelta(minutes=2)


async def answer_stranded(
    service: ConversationService,
    channel: str,
    send: UserSender,
    *,
    now: Callable[[], datetime] = utcnow,
    min_age: timedelta = timedelta(0),
) -> int:
    """Answer `channel`'s users whose last message no saved turn followed (and is at least
    `min_age` old); how many got an answer."""
    users = await service.store.stranded_users(channel, now() - STRANDED_NOTICE_WITHIN)
    if users:
        log.info("%d %s users have a message without an answer; answering", len(users), channel)
    gate = asyncio.Semaphore(CONCURRENCY)

    async def answer(user: str) -> bool:
        async with gate:
            try:
                replies = await service.answer_stranded(channel, user, now(), min_age=min_age)
                if replies:
                    await send(user, replies)
                return bool(replies)
            except Exception:  # one user's failure must not keep the others waiting
                raise_if_cancelling()
                log.exception("answering a message a restart left unanswered failed")
                metrics.ERRORS.labels("stranded").inc()
                return False

    answered = await asyncio.gather(*(answer(user) for user in users))
    return sum(answered)


def sweep_job(app: App, channel: str, *, now: Callable[[], datetime] = utcnow) -> Job:
    """`answer_stranded` every minute, on whichever instance takes the job's lease: a turn cut
    off on an instance that does not come back (scaled down, a SIGTERM past the drain time, a
    turn that could not be saved) gets its answer within minutes, not at the next start."""

    async def sweep() -> None:
        send = app.tickets.sender_for(channel)
        if send is not None:  # the channel does not run here (it failed, or `lotse matrix`)
            await answer_stranded(app.service, channel, send, now=now, min_age=SWEEP_MIN_AGE)

    return Job(f"stranded:{channel}", SWEEP_EVERY, sweep, timeout=300.0)


def start_answering_stranded(app: App, channel: str) -> Stopper | None:
    """`answer_stranded` in the background with the sender `channel` registered here (None
    without one); the stopper cancels what is left of it."""
    send = app.tickets.sender_for(channel)
    if send is None:
        return None
    answering = answer_stranded(app.service, channel, send)
    task = asyncio.create_task(answering, name=f"stranded {channel}")

    def ended(task: asyncio.Task[int]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("answering stranded %s messages failed", channel, exc_info=task.exception())
            metrics.ERRORS.labels("stranded").inc()

    task.add_done_callback(ended)

    async def stop(within: float) -> None:
        task.cancel()
        with suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(task, within)

    return stop
