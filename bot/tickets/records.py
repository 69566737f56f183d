"""The ticket transactions: plain functions of a SQLAlchemy `Connection`, run by `Store.run`.

Every change to a ticket queues its mail in the same transaction, so a ticket never exists
without its mail and a mail server that is down loses nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import make_msgid
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, delete, func, insert, or_, select, text, update

from bot.clock import as_utc, utcnow
from bot.config import Settings
from bot.i18n import N_, SOURCE_LOCALE, Text, Translator, translator
from bot.storage.tables import (
    ChannelOutboxRow,
    Conversation,
    HandoffLink,
    IncidentReport,
    Message,
    OutgoingMail,
    TicketMessage,
    User,
)
from bot.storage.tables import Ticket as TicketRow
from bot.tickets import mail_text
from bot.tickets.models import (
    ACTIVE,
    Ticket,
    TicketError,
    no_such_ticket,
    ticket_from_row,
)

__all__ = [
    "CONTEXT_MESSAGES",
    "DELETED_NOTE",
    "IDLE_CLOSE_NOTE",
    "INCIDENT_QUIET",
    "MERGE_WINDOW",
    "OUTBOX_WORDS",
    "TICKET_LIMIT",
    "TICKET_LIMIT_WINDOW",
    "Forgotten",
    "MailSettings",
    "NewTicket",
    "TicketLimitReached",
    "TranscriptLine",
    "active_for",
    "add_message",
    "add_turn",
    "answer",
    "close",
    "close_idle",
    "create",
    "end_incidents",
    "forget_user",
    "hand_back",
    "incident_key",
    "listing",
    "load",
    "mail_settings",
    "mail_thread",
    "new_message_id",
    "open_incident",
    "parked_mails",
    "queue_mail",
    "queue_ticket_mail",
    "queued_mails",
    "require",
    "require_active",
    "take",
    "transcript",
    "user_key",
    "user_message",
]

CONTEXT_MESSAGES = 60  # how much of the conversation before the hand-over a ticket copies
# At most this many tickets per user within the window, also across /loeschen: asking for a
# human, deleting and asking again must not flood the helpdesk with tickets, mails and cards.
TICKET_LIMIT = 3
TICKET_LIMIT_WINDOW = timedelta(hours=1)
# A user's messages to an agent within this time after the first go out as one mail (the
# agents' chat merges them the same way: bot/agents/desk.py).
MERGE_WINDOW = timedelta(seconds=3)
# An incident (one ticket for a server error many users see) takes reports until a check finds
# the server healthy again, or until nobody reported it for this long.
INCIDENT_QUIET = timedelta(hours=1)
# The channel outbox's kinds that carry what a user wrote or was sent (channel_outbox.py).
OUTBOX_WORDS = ("relay", "user")

TranscriptLine = tuple[str, str | None, str, datetime]  # direction, author, text, created_at


@dataclass(frozen=True)
class MailSettings:
    """Where ticket mail goes; None of these in the service means no mail is queued."""

    recipient: str
    sender: str
    timezone: str = "Europe/Berlin"  # the helpdesk's (server.yaml), for the times in mails
    locale: str = SOURCE_LOCALE  # the helpdesk's language: German, whatever the user's

    @property
    def tr(self) -> Translator:
        return translator(self.locale)

    @property
    def domain(self) -> str:
        return self.sender.rpartition("@")[2] or "localhost"

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def message_id(self, idstring: str) -> str:
        return make_msgid(idstring=idstring, domain=self.domain)


def mail_settings(settings: Settings, timezone: str) -> MailSettings | None:
    """Where ticket mail goes; None (nothing queued) without a helpdesk address or without a
    mail server to deliver to."""
    if not settings.helpdesk_email or settings.smtp_url is None:
        return None
    return MailSettings(
        recipient=settings.helpdesk_email, sender=settings.mail_from, timezone=timezone
    )


def new_message_id(mail: MailSettings | None, idstring: str) -> str:
    """A Message-ID for a mail thread, also without mail (it is kept for when mail comes)."""
    return mail.message_id(idstring) if mail is not None else make_msgid(idstring, "localhost")


@dataclass(frozen=True)
class NewTicket:
    reason: str
    channel: str
    user: str
    locale: str
    program: str | None
    version: str | None
    guide: str | None
    step: int | None
    last_check: dict[str, Any] | None
    external_ref: str | None
    incident_key: str | None = None  # a server error's finding (`incident_key`)


def user_key(channel: str, user: str) -> str:
    """A user as a hash: what the ticket limit and incident reports keep, never the id."""
    return hashlib.sha256(f"lotse-user\0{channel}\0{user}".encode()).hexdigest()


def incident_key(last_check: dict[str, Any]) -> str | None:
    """What a check found wrong, as a key: the server and each failing endpoint with its error
    findings ("mbox1.example|imap/993/tls:cert_expired"). None without a failing endpoint."""
    failing = []
    for endpoint in last_check.get("endpoints") or []:
        if endpoint.get("status") != "error":
            continue
        codes = sorted(
            {
                str(f.get("code"))
                for f in endpoint.get("findings") or []
                if f.get("severity") == "error"
            }
        )
        where = f"{endpoint.get('protocol')}/{endpoint.get('port')}/{endpoint.get('security')}"
        failing.append(f"{where}:{','.join(codes)}")
    if not failing:
        return None
    server = str(last_check.get("server") or "")
    key = f"{server}|{';'.join(sorted(failing))}"
    if len(key) > 255:  # many endpoints: still one key per finding
        key = f"{server[:180]}|{hashlib.sha256(key.encode()).hexdigest()}"
    return key


def _server_prefix(server: str) -> str:
    return f"{server[:180]}|"


def _lock(conn: Connection, name: str) -> None:
    """Serialise a decision across PostgreSQL instances for this transaction (SQLite runs one
    transaction at a time anyway)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": name})


# --- reading -----------------------------------------------------------------------------


def load(conn: Connection, number: int) -> Ticket | None:
    row = conn.execute(select(TicketRow).where(TicketRow.id == number)).first()
    if row is None:
        return None
    affected = conn.execute(
        select(func.count()).select_from(IncidentReport).where(IncidentReport.ticket_id == number)
    ).scalar_one()
    return ticket_from_row(row, int(affected))


def require(conn: Connection, number: int) -> Ticket:
    ticket = load(conn, number)
    if ticket is None:
        raise no_such_ticket(number)
    return ticket


def require_active(conn: Connection, number: int) -> Ticket:
    ticket = require(conn, number)
    if not ticket.active:
        raise TicketError(N_("Ticket Nr. {number} ist bereits geschlossen."), number=number)
    return ticket


def active_for(conn: Connection, channel: str, user: str) -> Ticket | None:
    row = conn.execute(
        select(TicketRow)
        .where(
            TicketRow.channel == channel,
            TicketRow.user_external_id == user,
            TicketRow.status.in_(ACTIVE),
        )
        .order_by(TicketRow.id.desc())
    ).first()
    return ticket_from_row(row) if row is not None else None


def listing(conn: Connection, status: str | None) -> list[Ticket]:
    query = select(TicketRow).order_by(TicketRow.id)
    if status is not None:
        query = query.where(TicketRow.status == status)
    return [ticket_from_row(row) for row in conn.execute(query)]


def transcript(conn: Connection, number: int) -> list[TranscriptLine]:
    rows = conn.execute(
        select(
            TicketMessage.direction,
            TicketMessage.author,
            TicketMessage.text,
            TicketMessage.created_at,
        )
        .where(TicketMessage.ticket_id == number)
        .order_by(TicketMessage.id)
    ).all()
    return [(d, a, t, as_utc(c)) for d, a, t, c in rows]


def mail_thread(conn: Connection, number: int) -> str:
    return str(
        conn.execute(select(TicketRow.mail_thread_id).where(TicketRow.id == number)).scalar_one()
    )


def queued_mails(conn: Connection) -> int:
    """Mails waiting to be sent (not the parked ones)."""
    waiting = select(func.count()).where(OutgoingMail.parked_at.is_(None))
    return int(conn.execute(waiting).scalar_one())


def parked_mails(conn: Connection) -> int:
    """Mails set aside because they cannot be sent as they are (see `outbox`)."""
    parked = select(func.count()).where(OutgoingMail.parked_at.is_not(None))
    return int(conn.execute(parked).scalar_one())


# --- writing -----------------------------------------------------------------------------


def queue_mail(
    conn: Connection,
    mail: MailSettings | None,
    *,
    subject: str,
    body: str,
    message_id: str,
    in_reply_to: str | None,
    now: datetime | None = None,
    not_before: datetime | None = None,
) -> None:
    if mail is None:
        return
    now = now or utcnow()
    conn.execute(
        insert(OutgoingMail).values(
            recipient=mail.recipient,
            subject=subject,
            body=body,
            message_id=message_id,
            in_reply_to=in_reply_to,
            created_at=now,
            attempts=0,
            next_attempt_at=not_before or now,
        )
    )


def queue_ticket_mail(
    conn: Connection,
    mail: MailSettings | None,
    ticket: Ticket,
    kind: str,
    *,
    text: str | Text | None = None,
    agent: str | None = None,
    with_transcript: bool = False,
    now: datetime | None = None,
    not_before: datetime | None = None,
) -> None:
    """`text`: what the user or the agent wrote, or a note of Lotse's (a `Text`, in the
    helpdesk's language)."""
    if mail is None:
        return
    thread = mail_thread(conn, ticket.number)
    queue_mail(
        conn,
        mail,
        subject=mail_text.ticket_subject(ticket, kind, mail.tr),
        body=mail_text.ticket_body(
            ticket,
            kind,
            text=text.translated(mail.tr) if isinstance(text, Text) else text,
            agent=agent,
            transcript=transcript(conn, ticket.number) if with_transcript else None,
            zone=mail.zone,
            tr=mail.tr,
        ),
        message_id=thread if kind == "created" else mail.message_id(f"lotse-{ticket.number}"),
        in_reply_to=None if kind == "created" else thread,
        now=now,
        not_before=not_before,
    )


def add_message(
    conn: Connection,
    number: int,
    direction: str,
    text: str,
    author: str | None = None,
    now: datetime | None = None,
) -> None:
    conn.execute(
        insert(TicketMessage).values(
            ticket_id=number,
            direction=direction,
            author=author,
            text=text,
            created_at=now or utcnow(),
        )
    )


def add_turn(conn: Connection, number: int, inbound: str | None, replies: Sequence[str]) -> None:
    """A turn Lotse answered while the ticket is active: part of the transcript."""
    if inbound is not None:
        add_message(conn, number, "in", inbound)
    for reply in replies:
        add_message(conn, number, "out", reply)


class TicketLimitReached(Exception):
    """The user opened `TICKET_LIMIT` tickets within `TICKET_LIMIT_WINDOW` already."""


def create(
    conn: Connection, new: NewTicket, mail: MailSettings | None, now: datetime | None = None
) -> tuple[Ticket, bool]:
    """The user's active ticket if there is one (False), else a new ticket (True). Raises
    `TicketLimitReached` at the user's `TICKET_LIMIT` (a server error's incident is exempt:
    it is not their request)."""
    now = now or utcnow()
    existing = active_for(conn, new.channel, new.user)
    if existing is not None:
        return existing, False
    key = user_key(new.channel, new.user)
    window_start = now - TICKET_LIMIT_WINDOW
    # The hashes are kept for the window only, also those of users who deleted their data.
    conn.execute(
        update(TicketRow)
        .where(TicketRow.requester_key.is_not(None), TicketRow.created_at < window_start)
        .values(requester_key=None)
    )
    if new.incident_key is None:
        recent = conn.execute(
            select(func.count())
            .select_from(TicketRow)
            .where(TicketRow.requester_key == key, TicketRow.created_at >= window_start)
        ).scalar_one()
        if recent >= TICKET_LIMIT:
            raise TicketLimitReached
    number = conn.execute(
        insert(TicketRow)
        .values(
            status="new",
            reason=new.reason,
            channel=new.channel,
            user_external_id=new.user,
            locale=new.locale,
            program=new.program,
            version=new.version,
            guide=new.guide,
            step=new.step,
            last_check=new.last_check,
            external_ref=new.external_ref,
            mail_thread_id=new_message_id(mail, "lotse-ticket"),
            created_at=now,
            requester_key=key,
            incident_key=new.incident_key,
            incident_seen_at=now if new.incident_key else None,
        )
        .returning(TicketRow.id)
    ).scalar_one()
    if new.incident_key is not None:
        conn.execute(insert(IncidentReport).values(ticket_id=number, user_key=key, created_at=now))
    _copy_conversation(conn, number, new.channel, new.user)
    ticket = require(conn, number)
    queue_ticket_mail(conn, mail, ticket, "created", with_transcript=True, now=now)
    return ticket, True


def open_incident(
    conn: Connection, new: NewTicket, mail: MailSettings | None, now: datetime
) -> tuple[Ticket, bool]:
    """A server error: the incident ticket of the same finding within its window, with this
    user counted once (False), else a new incident ticket for this user (True)."""
    key = new.incident_key
    assert key is not None
    _lock(conn, f"lotse-incident:{key}")
    row = conn.execute(
        select(TicketRow.id)
        .where(
            TicketRow.incident_key == key,
            TicketRow.status.in_(ACTIVE),
            TicketRow.incident_seen_at >= now - INCIDENT_QUIET,
        )
        .order_by(TicketRow.id.desc())
    ).first()
    if row is None:
        return create(conn, new, mail, now)
    number = int(row[0])
    reporter = user_key(new.channel, new.user)
    known = conn.execute(
        select(IncidentReport.user_key).where(
            IncidentReport.ticket_id == number, IncidentReport.user_key == reporter
        )
    ).first()
    if known is None:
        conn.execute(
            insert(IncidentReport).values(ticket_id=number, user_key=reporter, created_at=now)
        )
    conn.execute(update(TicketRow).where(TicketRow.id == number).values(incident_seen_at=now))
    return require(conn, number), False


def end_incidents(conn: Connection, server: str) -> list[int]:
    """A check found `server` healthy: its incidents take no more reports (the tickets stay
    for the agents). The numbers of the incidents ended."""
    prefix = _server_prefix(server)
    numbers = list(
        conn.execute(
            select(TicketRow.id).where(
                TicketRow.incident_key.is_not(None),
                func.substr(TicketRow.incident_key, 1, len(prefix)) == prefix,
            )
        ).scalars()
    )
    if numbers:
        conn.execute(update(TicketRow).where(TicketRow.id.in_(numbers)).values(incident_key=None))
    return numbers


def _copy_conversation(conn: Connection, number: int, channel: str, user: str) -> None:
    """The last messages before the hand-over, so that nobody asks the user twice."""
    rows = conn.execute(
        select(Message.direction, Message.text, Message.created_at)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .join(User, User.id == Conversation.user_id)
        .where(User.channel == channel, User.external_id == user)
        .order_by(Message.id.desc())
        .limit(CONTEXT_MESSAGES)
    ).all()
    if rows:
        conn.execute(
            insert(TicketMessage),
            [
                {"ticket_id": number, "direction": d, "author": None, "text": t, "created_at": c}
                for d, t, c in reversed(rows)
            ],
        )


def _set(conn: Connection, number: int, **values: Any) -> Ticket:
    conn.execute(update(TicketRow).where(TicketRow.id == number).values(**values))
    return require(conn, number)


def _taken_by_other(number: int, assignee: str | None) -> TicketError:
    return TicketError(
        N_("Ticket Nr. {number} hat bereits {assignee} übernommen."),
        number=number,
        assignee=assignee,
    )


def take(conn: Connection, number: int, agent: str, mail: MailSettings | None) -> Ticket:
    """The agent takes a new or waiting ticket. Conditional, so that of two agents taking one
    ticket at the same moment exactly one gets it (PostgreSQL re-checks the condition after
    the other's commit); the other learns who has it."""
    taken = conn.execute(
        update(TicketRow)
        .where(TicketRow.id == number, TicketRow.status.in_(("new", "waiting")))
        .values(status="open", assignee=agent, taken_at=utcnow())
    )
    ticket = require_active(conn, number)
    if taken.rowcount != 1:
        if ticket.assignee == agent:
            return ticket  # the same agent again
        raise _taken_by_other(number, ticket.assignee)
    queue_ticket_mail(conn, mail, ticket, "taken", agent=agent)
    return ticket


def answer(
    conn: Connection, number: int, agent: str, text: str, mail: MailSettings | None
) -> tuple[Ticket, bool]:
    """Record an agent's answer (redacted text); takes a ticket nobody has. True if taken now."""
    ticket = require_active(conn, number)
    taken_now = False
    if ticket.status != "open":
        ticket = take(conn, number, agent, mail)
        taken_now = True
    # Only while the ticket is still this agent's: checked and marked in one statement.
    marked = conn.execute(
        update(TicketRow)
        .where(TicketRow.id == number, TicketRow.status == "open", TicketRow.assignee == agent)
        .values(first_answer_at=func.coalesce(TicketRow.first_answer_at, utcnow()))
    )
    if marked.rowcount != 1:
        ticket = require_active(conn, number)
        raise _taken_by_other(number, ticket.assignee)
    add_message(conn, number, "agent", text, author=agent)
    ticket = require(conn, number)
    queue_ticket_mail(conn, mail, ticket, "agent_message", text=text, agent=agent)
    return ticket, taken_now


def _change_active(conn: Connection, number: int, **values: Any) -> Ticket:
    """Change a ticket that is not closed, in one statement (a close in between wins)."""
    changed = conn.execute(
        update(TicketRow)
        .where(TicketRow.id == number, TicketRow.status != "closed")
        .values(**values)
    )
    if changed.rowcount != 1:
        require_active(conn, number)  # says which: unknown or already closed
    return require(conn, number)


def user_message(
    conn: Connection, number: int, text: str, mail: MailSettings | None, now: datetime
) -> Ticket:
    """What the user wrote to the agent: in the transcript now; in a mail held for
    `MERGE_WINDOW`, so that what they write meanwhile joins that mail instead of its own."""
    ticket = require(conn, number)
    add_message(conn, number, "in", text, now=now)
    if mail is None:
        return ticket
    subject = mail_text.ticket_subject(ticket, "user_message", mail.tr)
    held = conn.execute(
        select(OutgoingMail.id, OutgoingMail.created_at)
        .where(
            OutgoingMail.in_reply_to == mail_thread(conn, number),
            OutgoingMail.subject == subject,
            OutgoingMail.attempts == 0,
            OutgoingMail.next_attempt_at > now,
        )
        .order_by(OutgoingMail.id.desc())
    ).first()
    if held is None:
        queue_ticket_mail(
            conn,
            mail,
            ticket,
            "user_message",
            text=text,
            now=now,
            not_before=now + MERGE_WINDOW,
        )
        return ticket
    held_id, since = held
    # From the message that started the held mail (recorded with the mail's time) on.
    first = (
        select(func.min(TicketMessage.id))
        .where(
            TicketMessage.ticket_id == number,
            TicketMessage.direction == "in",
            TicketMessage.created_at == since,
        )
        .scalar_subquery()
    )
    texts = conn.execute(
        select(TicketMessage.text)
        .where(
            TicketMessage.ticket_id == number,
            TicketMessage.direction == "in",
            TicketMessage.id >= first,
        )
        .order_by(TicketMessage.id)
    ).scalars()
    merged = "\n\n".join(texts)
    body = mail_text.ticket_body(
        ticket,
        "user_message",
        text=merged,
        agent=None,
        transcript=None,
        zone=mail.zone,
        tr=mail.tr,
    )
    conn.execute(update(OutgoingMail).where(OutgoingMail.id == held_id).values(body=body))
    return ticket


def hand_back(
    conn: Connection, number: int, agent: str | None, mail: MailSettings | None
) -> Ticket:
    ticket = _change_active(conn, number, status="waiting")
    queue_ticket_mail(conn, mail, ticket, "handed_back", agent=agent)
    return ticket


def close(conn: Connection, number: int, agent: str | None, mail: MailSettings | None) -> Ticket:
    ticket = _change_active(conn, number, status="closed", closed_at=utcnow())
    queue_ticket_mail(conn, mail, ticket, "closed", agent=agent, with_transcript=True)
    return ticket


# The "closed" mail of a ticket whose user had their data deleted (for the helpdesk).
DELETED_NOTE = N_(
    "Der Nutzer hat seine Daten löschen lassen. Der Verlauf und die noch nicht versandten "
    "Mails zu diesem Ticket sind gelöscht."
)


@dataclass(frozen=True)
class Forgotten:
    closed: list[Ticket]  # closed now: the agents' cards must stop offering to answer
    numbers: list[int]  # all the user's tickets: their messages in the agents' chats go too


def forget_user(conn: Connection, channel: str, user: str, mail: MailSettings | None) -> Forgotten:
    """The user had their data deleted: close their tickets, drop the transcripts, the unsent
    mail about them and the pending deliveries with their words, and unlink the hand-back
    links they used.

    Unsent ticket mail quotes the user (their messages, the transcript), so it is deleted, not
    sent later. Emptying each instead would mail the helpdesk a row of blank updates; one
    "closed" mail per ticket that was active or had mail waiting says what the helpdesk needs:
    the ticket exists and ended with the deletion, without a word the user wrote.
    """
    rows = conn.execute(
        select(TicketRow.id, TicketRow.mail_thread_id).where(
            TicketRow.channel == channel, TicketRow.user_external_id == user
        )
    ).all()
    now = utcnow()
    closed: list[Ticket] = []
    numbers = [number for number, _thread in rows]
    conn.execute(delete(IncidentReport).where(IncidentReport.user_key == user_key(channel, user)))
    # Their words waiting in the channel outbox (relays to the agents, pushes to them) go too.
    conn.execute(
        delete(ChannelOutboxRow).where(
            ChannelOutboxRow.ticket_id.in_(numbers), ChannelOutboxRow.kind.in_(OUTBOX_WORDS)
        )
    )
    for number, thread in rows:
        conn.execute(delete(TicketMessage).where(TicketMessage.ticket_id == number))
        unsent = set(
            conn.execute(
                delete(OutgoingMail)
                .where(or_(OutgoingMail.message_id == thread, OutgoingMail.in_reply_to == thread))
                .returning(OutgoingMail.message_id)
            ).scalars()
        )
        before = require(conn, number)
        # An incident others reported too stays open for them; only this user leaves it.
        was_active = before.active and before.affected == 0
        if was_active:
            _set(conn, number, status="closed", closed_at=now)
        ticket = _set(conn, number, user_external_id=None, purged_at=now)
        if not ticket.active and (was_active or unsent):
            queue_ticket_mail(conn, mail, ticket, "closed", text=Text(DELETED_NOTE))
        elif thread in unsent:  # an incident's first mail, again without this user's words
            queue_ticket_mail(conn, mail, ticket, "created", with_transcript=True)
        if was_active:
            closed.append(ticket)
    conn.execute(
        update(HandoffLink)
        .where(HandoffLink.channel == channel, HandoffLink.user_external_id == user)
        .values(channel=None, user_external_id=None)
    )
    return Forgotten(closed, numbers)


# The ticket mail that says so (for the helpdesk); no agent closed these.
IDLE_CLOSE_NOTE = N_(
    "Automatisch geschlossen: Der Nutzer hat sich seit {days} Tagen nicht mehr gemeldet."
)


def close_idle(
    conn: Connection, now: datetime, waiting_days: int, new_days: int, mail: MailSettings | None
) -> list[Ticket]:
    """Close tickets nobody moves any more, so that they stop keeping the user's conversation:
    "waiting" (back with Lotse) with no message for `waiting_days`, "new" (never taken) with
    none for `new_days`. Each gets its "closed" mail with the transcript."""
    last_activity = func.coalesce(
        select(func.max(TicketMessage.created_at))
        .where(TicketMessage.ticket_id == TicketRow.id)
        .scalar_subquery(),
        TicketRow.created_at,
    )
    idle = list(
        conn.execute(
            select(TicketRow.id, TicketRow.status).where(
                or_(
                    (TicketRow.status == "waiting")
                    & (last_activity < now - timedelta(days=waiting_days)),
                    (TicketRow.status == "new") & (last_activity < now - timedelta(days=new_days)),
                )
            )
        ).all()
    )
    closed: list[Ticket] = []
    for number, status in idle:
        ticket = _set(conn, number, status="closed", closed_at=now)
        days = waiting_days if status == "waiting" else new_days
        queue_ticket_mail(
            conn,
            mail,
            ticket,
            "closed",
            text=Text(IDLE_CLOSE_NOTE, days=days),
            with_transcript=True,
        )
        closed.append(ticket)
    return closed
