"""The channel outbox: what waits for a chat channel, in the database (not the mail outbox:
`outbox.py`), so that a restart or another instance loses nothing.

- kind "user": the replies for one user, sent through the channel's own user sender (queued
  when another instance runs the channel: Matrix under its lease "channel:matrix");
- kind "agents": a ticket event for the channel's agents' chat (the card, a status line, an
  agent's answer), written by the desk of the instance where it happened;
- kind "relay": what a user wrote to the agent, held for `records.MERGE_WINDOW` so that what
  they write meanwhile joins it (one post instead of 45);
- kind "refresh": redraw a ticket's card (another user reported its incident); one pending
  per ticket is enough, since the card is drawn from the ticket as it is then.
A deliverer runs on each instance with the channel (the agents' chat's, or Matrix's holder) and
polls every second (woken at once when its own desk queues). It claims rows with a conditional
UPDATE (two deliverers never claim the same row), marks each delivered and retries a failed
one after a growing pause, at most `MAX_ATTEMPTS` times. Order and fairness: rows of one
ticket go out in `id` order (later ones wait behind one not due: held or being retried);
tickets take turns, one row each per round, a new ticket's card first, so one user's backlog
never holds up another's card. A row for a channel no instance here or elsewhere runs is not
queued; then the caller still says the user is not reachable.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, delete, insert, or_, select, update

from bot import metrics
from bot.clock import as_utc, utcnow
from bot.engine.decision import Attachment, Reply
from bot.engine.state import Option
from bot.storage.tables import ChannelOutboxRow, JobLease
from bot.tickets import records
from bot.tickets.models import EventKind, TicketEvent

__all__ = [
    "AGENTS",
    "BATCH",
    "CLAIM_SECONDS",
    "KEEP_DELIVERED",
    "LEASED_CHANNELS",
    "MAX_ATTEMPTS",
    "POLL_SECONDS",
    "REFRESH",
    "RELAY",
    "SCAN",
    "USER",
    "Deliverer",
    "EventShower",
    "Pending",
    "Stopper",
    "UserSender",
    "claim",
    "delivered",
    "event_payload",
    "failed",
    "lease_name",
    "purge",
    "queue",
    "queue_event",
    "queue_refresh",
    "queue_relay",
    "release",
    "replies_from_payload",
    "replies_payload",
    "served_elsewhere",
    "start_deliverer",
]

if TYPE_CHECKING:
    from bot.storage.store import Store

log = logging.getLogger(__name__)

USER = "user"
AGENTS = "agents"
RELAY = "relay"
REFRESH = "refresh"
assert set(records.OUTBOX_WORDS) == {USER, RELAY}  # deleted with the user's data
LEASED_CHANNELS = ("matrix",)  # channels one instance runs, under the lease "channel:<name>"
MAX_ATTEMPTS = 5
CLAIM_SECONDS = 60.0  # a deliverer that dies lets its claimed rows go after this
POLL_SECONDS = 1.0
BATCH = 50  # tickets served per round
SCAN = 2000  # pending rows looked at per round to find each ticket's next one
KEEP_DELIVERED = timedelta(days=1)

UserSender = Callable[[str, list[Reply]], Awaitable[None]]
EventShower = Callable[[TicketEvent, str | None], Awaitable[None]]


@dataclass(frozen=True)
class Pending:
    id: int
    kind: str
    payload: dict[str, Any]
    ticket: int | None = None


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
    conn: Connection,
    channel: str,
    kind: str,
    payload: dict[str, Any],
    now: datetime,
    *,
    ticket: int | None = None,
    new_ticket: bool = False,
    here: bool = False,
) -> bool:
    """Queue one delivery if this instance (`here`) or another one runs `channel`; whether it
    was queued. `ticket`: the ticket it is about (its order, its turn); `new_ticket`: a new
    ticket's card, which goes before other tickets' rows."""
    if not here and not served_elsewhere(conn, channel):
        return False
    conn.execute(
        insert(ChannelOutboxRow).values(
            channel=channel,
            kind=kind,
            payload=payload,
            created_at=now,
            attempts=0,
            ticket_id=ticket,
            new_ticket=new_ticket,
        )
    )
    return True


def _waiting_row(conn: Connection, channel: str, kind: str, ticket: int) -> Any:
    """The ticket's row of `kind` nobody has tried yet, if there is one."""
    return conn.execute(
        select(ChannelOutboxRow.id, ChannelOutboxRow.payload, ChannelOutboxRow.due_at)
        .where(
            ChannelOutboxRow.channel == channel,
            ChannelOutboxRow.kind == kind,
            ChannelOutboxRow.ticket_id == ticket,
            ChannelOutboxRow.delivered_at.is_(None),
            ChannelOutboxRow.claim.is_(None),
            ChannelOutboxRow.attempts == 0,
        )
        .order_by(ChannelOutboxRow.id.desc())
    ).first()


def queue_relay(
    conn: Connection,
    channel: str,
    ticket: int,
    text: str,
    now: datetime,
    window: timedelta,
    *,
    here: bool = False,
) -> bool:
    """A user's message for the agents' chat: joins the ticket's relay still held (queued less
    than `window` ago), else starts one held for `window`. Whether it was queued."""
    if not here and not served_elsewhere(conn, channel):
        return False
    held = _waiting_row(conn, channel, RELAY, ticket)
    if held is not None and held.due_at is not None and as_utc(held.due_at) > now:
        payload = {**held.payload, "texts": [*held.payload["texts"], text]}
        joined = conn.execute(
            update(ChannelOutboxRow)
            .where(ChannelOutboxRow.id == held.id, ChannelOutboxRow.claim.is_(None))
            .values(payload=payload)
        )
        if joined.rowcount == 1:
            return True
    conn.execute(
        insert(ChannelOutboxRow).values(
            channel=channel,
            kind=RELAY,
            payload={"ticket": ticket, "texts": [text]},
            created_at=now,
            attempts=0,
            ticket_id=ticket,
            due_at=now + window,
        )
    )
    return True


def queue_refresh(
    conn: Connection, channel: str, ticket: int, now: datetime, *, here: bool
) -> bool:
    """Redraw the ticket's card; nothing new when a redraw is waiting already."""
    if not here and not served_elsewhere(conn, channel):
        return False
    if _waiting_row(conn, channel, REFRESH, ticket) is not None:
        return True
    return queue(conn, channel, REFRESH, {"ticket": ticket}, now, ticket=ticket, here=here)


def queue_event(
    conn: Connection,
    event: TicketEvent,
    source: str | None,
    here: frozenset[str],
    now: datetime,
    window: timedelta,
) -> list[str]:
    """A ticket event for every agents' chat: those of this instance (`here`) and those of a
    channel another instance runs; the channels with something due now (a held relay is not:
    the deliverer's poll finds it when its time comes). `source`: the agents' chat an agent's
    answer was written in (its agents saw it already)."""
    due_now = []
    number = event.ticket.number
    for name in sorted(here | set(LEASED_CHANNELS)):
        local = name in here
        if event.kind == "agent_message" and source == name:
            continue
        if event.kind == "user_message" and event.text is not None:
            queue_relay(conn, name, number, event.text, now, window, here=local)
            done = window <= timedelta(0)
        elif event.kind == "reported":
            done = queue_refresh(conn, name, number, now, here=local)
        else:
            payload = event_payload(event, source)
            new = event.kind == "created"
            done = queue(
                conn, name, AGENTS, payload, now, ticket=number, new_ticket=new, here=local
            )
        if done:
            due_now.append(name)
    return due_now


def claim(conn: Connection, channel: str, token: str, now: datetime, limit: int) -> list[Pending]:
    """Claim the next row of each ticket that is due, a new ticket's card first, then the
    oldest; a ticket whose next row is not due (held, being retried, claimed by another
    deliverer) waits. The UPDATE's condition lets only one claimant win a row."""
    rows = conn.execute(
        select(
            ChannelOutboxRow.id,
            ChannelOutboxRow.ticket_id,
            ChannelOutboxRow.new_ticket,
            ChannelOutboxRow.claimed_until,
            ChannelOutboxRow.due_at,
        )
        .where(
            ChannelOutboxRow.channel == channel,
            ChannelOutboxRow.delivered_at.is_(None),
            ChannelOutboxRow.attempts < MAX_ATTEMPTS,
        )
        .order_by(ChannelOutboxRow.id)
        .limit(SCAN)
    ).all()
    seen: set[int | None] = set()  # rows without a ticket (older ones) are one line
    heads: list[tuple[bool, int]] = []
    for row_id, ticket, new_ticket, claimed_until, due_at in rows:
        if ticket in seen:
            continue
        seen.add(ticket)
        busy = claimed_until is not None and as_utc(claimed_until) >= now
        held = due_at is not None and as_utc(due_at) > now
        if not busy and not held:
            heads.append((not new_ticket, row_id))
    due = [row_id for _later, row_id in sorted(heads)[:limit]]
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
        select(
            ChannelOutboxRow.id,
            ChannelOutboxRow.kind,
            ChannelOutboxRow.payload,
            ChannelOutboxRow.ticket_id,
            ChannelOutboxRow.new_ticket,
        ).where(ChannelOutboxRow.claim == token, ChannelOutboxRow.delivered_at.is_(None))
    ).all()
    ordered = sorted(claimed, key=lambda row: (not row.new_ticket, row.id))
    return [Pending(row.id, row.kind, row.payload, row.ticket_id) for row in ordered]


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


# --- the deliverer ----------------------------------------------------------------------


class Deliverer:
    """Delivers the rows queued for `channel` on an instance that runs it.

    `send_user`: the channel's sender for "user" rows (None: this instance queues none);
    `show_event`: the desk showing an event in this channel's agents' chat (None: no chat)."""

    def __init__(
        self,
        store: Store,
        channel: str,
        send_user: UserSender | None,
        show_event: EventShower | None,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store, self.channel, self.clock = store, channel, clock
        self.send_user, self.show_event = send_user, show_event
        self._news = asyncio.Event()
        self.stopping = False  # finish the row under way, leave the rest for the next start
        self._round = asyncio.Lock()  # one round at a time here (`deliver_all` waits for it)

    def wake(self) -> None:
        """Something was queued here: deliver now rather than at the next poll."""
        self._news.set()

    async def deliver_pending(self) -> int:
        """One round: each ticket's next due row (see `claim`); how many were delivered. A
        failed row waits for its retry, the other tickets' rows go on."""
        async with self._round:
            return await self._round_of_deliveries()

    async def _round_of_deliveries(self) -> int:
        token = uuid.uuid4().hex
        rows = await self.store.run(claim, self.channel, token, self.clock(), BATCH)
        done = failures = 0
        for row in rows:
            if self.stopping:
                break
            try:
                await self._deliver(row)
            except Exception as error:
                failures += 1
                attempts = await self.store.run(failed, row.id, self.clock())
                log.warning(
                    "%s outbox row %d failed (attempt %d of %d): %s",
                    self.channel,
                    row.id,
                    attempts,
                    MAX_ATTEMPTS,
                    type(error).__name__,
                )
                metrics.ERRORS.labels("channel_outbox").inc()
                continue
            await self.store.run(delivered, row.id, self.clock())
            done += 1
        if self.stopping and done + failures < len(rows):
            await self.store.run(release, token)  # the rows not tried, for the next start
        return done

    async def deliver_all(self) -> None:
        """Deliver until nothing is due (shutdown, tests); held relays stay for later."""
        while await self.deliver_pending():
            pass

    async def _deliver(self, row: Pending) -> None:
        if row.kind == USER:
            if self.send_user is None:
                raise LookupError(f"no {self.channel} sender on this instance")
            user, replies = replies_from_payload(row.payload)
            await self.send_user(user, replies)
            return
        if self.show_event is None:  # no agents' chat on this channel: nothing to show
            return
        payload = row.payload
        ticket = await self.store.run(records.load, int(payload["ticket"]))
        if ticket is None:
            return
        if row.kind == RELAY:
            texts = [str(text) for text in payload["texts"]]
            await self.show_event(TicketEvent("user_message", ticket, "\n".join(texts)), None)
            return
        if row.kind == REFRESH:
            await self.show_event(TicketEvent("reported", ticket), None)
            return
        kind: EventKind = payload["event"]
        event = TicketEvent(kind, ticket, payload.get("text"), payload.get("agent"))
        await self.show_event(event, payload.get("source"))

    async def run(self) -> None:
        """Deliver now (what waited over a restart), then whenever woken or every
        `POLL_SECONDS`, until cancelled."""
        while not self.stopping:
            self._news.clear()
            try:
                if await self.deliver_pending():
                    continue  # more may be due: the next round at once
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the database is away: try again next round
                log.warning("%s outbox round failed: %s", self.channel, type(error).__name__)
            with suppress(TimeoutError):
                await asyncio.wait_for(self._news.wait(), POLL_SECONDS)


Stopper = Callable[[float], Awaitable[None]]


def start_deliverer(deliverer: Deliverer) -> Stopper:
    """Run `deliverer` in the background; the function that stops it."""
    task = asyncio.create_task(deliverer.run(), name=f"{deliverer.channel} outbox")

    async def stop(within: float) -> None:
        # The row under way is finished and recorded (so it is not posted again after the
        # restart); cancelled only if that takes longer than `within`.
        deliverer.stopping = True
        deliverer.wake()
        with suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(task, within)

    return stop
