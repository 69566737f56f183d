"""Deliveries for a channel that runs on another instance (not the mail outbox: `outbox.py`).

Matrix runs in one `lotse serve` instance only, the holder of the lease "channel:matrix". An
instance without it cannot push an agent's answer to a Matrix user nor post a ticket event in
the Matrix agents' room, so it writes the delivery to the table `channel_outbox` instead:
- kind "user": the replies for one user, sent through the channel's own user sender;
- kind "agents": a ticket event, shown by the desk in that channel's agents' chat only (the
  local chats of the instance that queued it showed it already).
The instance running the channel polls every second (and once when the channel starts), claims
pending rows in `id` order with a conditional UPDATE (two instances that briefly both lead never
claim the same row), marks each delivered, and retries a failed one after a growing pause, at
most `MAX_ATTEMPTS` times; later rows of the channel wait behind a row that is being retried, so
the order holds. A row is queued only when some instance is configured for the channel (its
lease row exists in `job_leases`); otherwise the caller still says the user is not reachable.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, delete, insert, or_, select, update

from bot import metrics
from bot.engine.decision import Attachment, Reply
from bot.engine.state import Option
from bot.storage.tables import ChannelOutboxRow, JobLease, utcnow
from bot.tickets import records
from bot.tickets.models import EventKind, TicketEvent

if TYPE_CHECKING:
    from bot.storage.store import Store

log = logging.getLogger(__name__)

USER = "user"
AGENTS = "agents"
LEASED_CHANNELS = ("matrix",)  # channels one instance runs, under the lease "channel:<name>"
MAX_ATTEMPTS = 5
CLAIM_SECONDS = 60.0  # a deliverer that dies lets its claimed rows go after this
POLL_SECONDS = 1.0
BATCH = 50
KEEP_DELIVERED = timedelta(days=1)

UserSender = Callable[[str, list[Reply]], Awaitable[None]]
EventShower = Callable[[TicketEvent, str | None], Awaitable[None]]


@dataclass(frozen=True)
class Pending:
    id: int
    kind: str
    payload: dict[str, Any]


def lease_name(channel: str) -> str:
    return f"channel:{channel}"


# --- payloads ---------------------------------------------------------------------------


def replies_payload(user: str, replies: list[Reply]) -> dict[str, Any]:
    def reply(item: Reply) -> dict[str, Any]:
        data: dict[str, Any] = {
            "text": item.text,
            "options": [[option.label, option.payload] for option in item.options],
        }
        if item.attachment is not None:
            attachment = item.attachment
            data["attachment"] = {
                "filename": attachment.filename,
                "media_type": attachment.media_type,
                "content": base64.b64encode(attachment.content).decode("ascii"),
            }
        return data

    return {"user": user, "replies": [reply(item) for item in replies]}


def replies_from_payload(payload: dict[str, Any]) -> tuple[str, list[Reply]]:
    replies = []
    for data in payload["replies"]:
        attachment = None
        if (file := data.get("attachment")) is not None:
            content = base64.b64decode(file["content"])
            attachment = Attachment(file["filename"], content, file["media_type"])
        options = tuple(Option(label, value) for label, value in data["options"])
        replies.append(Reply(data["text"], options, attachment))
    return str(payload["user"]), replies


def event_payload(event: TicketEvent, source: str | None) -> dict[str, Any]:
    """The event by ticket number: the deliverer shows the ticket as it is then."""
    return {
        "event": event.kind,
        "ticket": event.ticket.number,
        "text": event.text,
        "agent": event.agent,
        "source": source,
    }


# --- the transactions -------------------------------------------------------------------


def served_elsewhere(conn: Connection, channel: str) -> bool:
    """Whether some instance is configured for `channel`: each one competes for its lease."""
    if channel not in LEASED_CHANNELS:
        return False
    lease = select(JobLease.name).where(JobLease.name == lease_name(channel))
    return conn.execute(lease).first() is not None


def queue(
    conn: Connection, channel: str, kind: str, payload: dict[str, Any], now: datetime
) -> bool:
    """Queue one delivery if an instance runs `channel`; whether it was queued."""
    if not served_elsewhere(conn, channel):
        return False
    conn.execute(
        insert(ChannelOutboxRow).values(
            channel=channel, kind=kind, payload=payload, created_at=now, attempts=0
        )
    )
    return True


def claim(conn: Connection, channel: str, token: str, now: datetime, limit: int) -> list[Pending]:
    """Claim the channel's next due rows in order, up to the first one not due (being retried
    or claimed by another deliverer): the UPDATE's condition lets only one claimant win."""
    rows = conn.execute(
        select(ChannelOutboxRow.id, ChannelOutboxRow.claimed_until)
        .where(
            ChannelOutboxRow.channel == channel,
            ChannelOutboxRow.delivered_at.is_(None),
            ChannelOutboxRow.attempts < MAX_ATTEMPTS,
        )
        .order_by(ChannelOutboxRow.id)
        .limit(limit)
    ).all()
    due: list[int] = []
    for row_id, claimed_until in rows:
        if claimed_until is not None and _aware(claimed_until) >= now:
            break
        due.append(row_id)
    if not due:
        return []
    conn.execute(
        update(ChannelOutboxRow)
        .where(
            ChannelOutboxRow.id.in_(due),
            ChannelOutboxRow.delivered_at.is_(None),
            or_(ChannelOutboxRow.claimed_until.is_(None), ChannelOutboxRow.claimed_until < now),
        )
        .values(claim=token, claimed_until=now + timedelta(seconds=CLAIM_SECONDS))
    )
    claimed = conn.execute(
        select(ChannelOutboxRow.id, ChannelOutboxRow.kind, ChannelOutboxRow.payload)
        .where(ChannelOutboxRow.claim == token, ChannelOutboxRow.delivered_at.is_(None))
        .order_by(ChannelOutboxRow.id)
    ).all()
    return [Pending(row_id, kind, payload) for row_id, kind, payload in claimed]


def delivered(conn: Connection, row_id: int, now: datetime) -> None:
    conn.execute(
        update(ChannelOutboxRow)
        .where(ChannelOutboxRow.id == row_id)
        .values(delivered_at=now, claim=None, claimed_until=None)
    )


def failed(conn: Connection, row_id: int, now: datetime) -> int:
    """Count a failed attempt; the row is due again after 2, 4, 8 … s. Its attempts now."""
    attempts = conn.execute(
        select(ChannelOutboxRow.attempts).where(ChannelOutboxRow.id == row_id)
    ).scalar_one()
    attempts += 1
    conn.execute(
        update(ChannelOutboxRow)
        .where(ChannelOutboxRow.id == row_id)
        .values(
            attempts=attempts,
            claim=None,
            claimed_until=now + timedelta(seconds=min(2.0**attempts, 60.0)),
        )
    )
    return int(attempts)


def release(conn: Connection, token: str) -> None:
    """Give back the rows of a claim not tried (they wait behind a failed one)."""
    conn.execute(
        update(ChannelOutboxRow)
        .where(ChannelOutboxRow.claim == token, ChannelOutboxRow.delivered_at.is_(None))
        .values(claim=None, claimed_until=None)
    )


def purge(conn: Connection, now: datetime) -> int:
    """Delete rows delivered, or given up, more than a day ago: they hold message text."""
    cutoff = now - KEEP_DELIVERED
    given_up = and_(ChannelOutboxRow.attempts >= MAX_ATTEMPTS, ChannelOutboxRow.created_at < cutoff)
    done = conn.execute(
        delete(ChannelOutboxRow).where(or_(ChannelOutboxRow.delivered_at < cutoff, given_up))
    )
    return int(done.rowcount)


def _aware(moment: datetime) -> datetime:
    """SQLite gives naive datetimes back: they are UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# --- the deliverer ----------------------------------------------------------------------


class Deliverer:
    """Delivers the rows queued for `channel` on the instance that runs it."""

    def __init__(
        self, store: Store, channel: str, send_user: UserSender, show_event: EventShower | None
    ) -> None:
        self.store, self.channel = store, channel
        self.send_user, self.show_event = send_user, show_event

    async def deliver_pending(self) -> int:
        """One round: deliver what is due, in order; how many rows were delivered."""
        token = uuid.uuid4().hex
        rows = await self.store.run(claim, self.channel, token, utcnow(), BATCH)
        done = 0
        for row in rows:
            try:
                await self._deliver(row)
            except Exception as error:
                attempts = await self.store.run(failed, row.id, utcnow())
                log.warning(
                    "%s outbox row %d failed (attempt %d of %d): %s",
                    self.channel,
                    row.id,
                    attempts,
                    MAX_ATTEMPTS,
                    type(error).__name__,
                )
                metrics.ERRORS.labels("channel_outbox").inc()
                await self.store.run(release, token)  # the rest waits behind it
                break
            await self.store.run(delivered, row.id, utcnow())
            done += 1
        return done

    async def _deliver(self, row: Pending) -> None:
        if row.kind == USER:
            user, replies = replies_from_payload(row.payload)
            await self.send_user(user, replies)
            return
        if self.show_event is None:  # no agents' chat on this channel: nothing to show
            return
        payload = row.payload
        ticket = await self.store.run(records.load, int(payload["ticket"]))
        if ticket is None:
            return
        kind: EventKind = payload["event"]
        event = TicketEvent(kind, ticket, payload.get("text"), payload.get("agent"))
        await self.show_event(event, payload.get("source"))

    async def run(self) -> None:
        """Deliver now, then every `POLL_SECONDS`, until cancelled."""
        while True:
            try:
                await self.deliver_pending()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the database is away: try again next round
                log.warning("%s outbox round failed: %s", self.channel, type(error).__name__)
            await asyncio.sleep(POLL_SECONDS)


Stopper = Callable[[float], Awaitable[None]]


def start_deliverer(deliverer: Deliverer) -> Stopper:
    """Run `deliverer` in the background; the function that stops it."""
    task = asyncio.create_task(deliverer.run(), name=f"{deliverer.channel} outbox")

    async def stop(within: float) -> None:
        task.cancel()
        with suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(task, within)

    return stop
