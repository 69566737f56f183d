"""Delivering the ticket mail queue (`mail_queue`): oldest first, retried with backoff.

A mail leaves the queue only when the mail server accepted it. While the server is down (or
answers 4xx) each mail waits 30 s, 1 min, 2 min, ... up to an hour between attempts; nothing is
dropped. One mail that cannot be sent as it is, because it cannot be built or the server
refuses it for good (5xx for its recipient or content), is parked with its error
(`parked_at`, `last_error`; `lotse tickets mail` lists them) and the others go out: one bad mail
must not hold up the queue.

Headers are built from stored data (subjects carry agents' references): every header value is
cut to one line without control characters, so nothing stored can add a header.
"""

from __future__ import annotations

import asyncio
import email.policy
import logging
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Protocol

from sqlalchemy import Connection, delete, select, update

from bot import metrics
from bot.clock import as_utc, utcnow
from bot.storage.store import Store
from bot.storage.tables import OutgoingMail
from bot.tickets.records import parked_mails, queued_mails
from bot.tickets.smtp import BatchResult

__all__ = [
    "BATCH",
    "FIRST_RETRY",
    "LONGEST_RETRY",
    "DeliveryReport",
    "MailSender",
    "ParkedMail",
    "QueuedMail",
    "deliver_queue",
    "header_text",
    "parked",
    "retry_delay",
    "unpark",
]

log = logging.getLogger(__name__)

BATCH = 50
# Unfolded headers: folding a long encoded subject made some readers see a doubled space.
_POLICY = email.policy.SMTP.clone(max_line_length=998)
FIRST_RETRY = 30.0  # seconds
LONGEST_RETRY = 3600.0


def header_text(value: str) -> str:
    """A header value that stays one header: line breaks (also U+2028/9, NEL) and other
    control characters become spaces."""
    return "".join(
        " " if unicodedata.category(character) in _NOT_IN_HEADERS else character
        for character in value
    )


_NOT_IN_HEADERS = {"Cc", "Cf", "Zl", "Zp", "Cs"}


def retry_delay(attempts: int) -> timedelta:
    """After `attempts` failed attempts: 30 s, 60 s, 120 s, ... at most an hour."""
    return timedelta(seconds=min(LONGEST_RETRY, FIRST_RETRY * 2 ** max(0, attempts - 1)))


@dataclass(frozen=True)
class QueuedMail:
    id: int
    sender: str
    recipient: str
    subject: str
    body: str
    message_id: str
    in_reply_to: str | None
    created_at: datetime
    attempts: int

    def message(self) -> EmailMessage:
        message = EmailMessage(policy=_POLICY)
        message["From"] = header_text(self.sender)
        message["To"] = header_text(self.recipient)
        message["Subject"] = header_text(self.subject)
        message["Date"] = format_datetime(self.created_at)
        message["Message-ID"] = header_text(self.message_id)
        if self.in_reply_to:
            # Both, so mail clients and ticket systems (References) thread the follow-ups.
            message["In-Reply-To"] = header_text(self.in_reply_to)
            message["References"] = header_text(self.in_reply_to)
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(self.body)  # UTF-8, quoted-printable or base64 as needed
        message.as_bytes()  # raises here, for this mail, what would fail in the sender
        return message


@dataclass(frozen=True)
class DeliveryReport:
    sent: int
    failed: int  # not sent this time, to be retried
    waiting: int  # still queued afterwards (parked ones not counted)
    parked: int = 0  # set aside this time: cannot be sent as they are


def _due(conn: Connection, now: datetime, sender: str) -> list[QueuedMail]:
    rows = conn.execute(
        select(
            OutgoingMail.id,
            OutgoingMail.recipient,
            OutgoingMail.subject,
            OutgoingMail.body,
            OutgoingMail.message_id,
            OutgoingMail.in_reply_to,
            OutgoingMail.created_at,
            OutgoingMail.attempts,
        )
        .where(OutgoingMail.next_attempt_at <= now, OutgoingMail.parked_at.is_(None))
        .order_by(OutgoingMail.id)
        .limit(BATCH)
    ).all()
    return [
        QueuedMail(i, sender, r, s, b, m, irt, as_utc(c), a) for i, r, s, b, m, irt, c, a in rows
    ]


class MailSender(Protocol):
    def send_batch(self, messages: Sequence[EmailMessage]) -> BatchResult: ...


def _sent(conn: Connection, mail_ids: list[int]) -> None:
    conn.execute(delete(OutgoingMail).where(OutgoingMail.id.in_(mail_ids)))


def _failed(conn: Connection, mail_id: int, attempts: int, error: str, now: datetime) -> None:
    conn.execute(
        update(OutgoingMail)
        .where(OutgoingMail.id == mail_id)
        .values(
            attempts=attempts,
            next_attempt_at=now + retry_delay(attempts),
            last_error=error[:500],
        )
    )


def _park(conn: Connection, mail_id: int, attempts: int, error: str, now: datetime) -> None:
    conn.execute(
        update(OutgoingMail)
        .where(OutgoingMail.id == mail_id)
        .values(attempts=attempts, parked_at=now, last_error=error[:500])
    )


@dataclass(frozen=True)
class ParkedMail:
    id: int
    created_at: datetime
    subject: str
    error: str


def parked(conn: Connection) -> list[ParkedMail]:
    """The parked mails, oldest first (`lotse tickets mail`)."""
    rows = conn.execute(
        select(
            OutgoingMail.id, OutgoingMail.created_at, OutgoingMail.subject, OutgoingMail.last_error
        )
        .where(OutgoingMail.parked_at.is_not(None))
        .order_by(OutgoingMail.id)
    ).all()
    return [ParkedMail(i, as_utc(c), s, e or "") for i, c, s, e in rows]


def unpark(conn: Connection, mail_id: int | None, now: datetime) -> int:
    """Queue parked mail again (one, or all with None) once its cause is fixed; how many."""
    query = update(OutgoingMail).where(OutgoingMail.parked_at.is_not(None))
    if mail_id is not None:
        query = query.where(OutgoingMail.id == mail_id)
    return int(conn.execute(query.values(parked_at=None, next_attempt_at=now)).rowcount)


def _counts(conn: Connection) -> tuple[int, int]:
    """(waiting, parked) mails in the queue."""
    return queued_mails(conn), parked_mails(conn)


async def deliver_queue(
    store: Store,
    sender: MailSender,
    sender_address: str,
    *,
    now: Callable[[], datetime] = utcnow,
) -> DeliveryReport:
    """Send what is due over one connection; mails that cannot be sent as they are are parked,
    and the batch stops at the first other failure (the server is likely down for all)."""
    due = await store.run(_due, now(), sender_address)
    built: list[tuple[QueuedMail, EmailMessage]] = []
    parked: list[tuple[QueuedMail, str]] = []
    for mail in due:
        try:
            built.append((mail, mail.message()))
        except Exception as error:  # whatever stored data breaks it, it breaks only this mail
            parked.append((mail, f"cannot be built: {type(error).__name__}: {error}"))
    sent = failed = 0
    if built:
        result = await asyncio.to_thread(sender.send_batch, [message for _, message in built])
        tried = list(zip(built, result.refusals, strict=False))
        accepted = [mail.id for (mail, _), refusal in tried if refusal is None]
        parked += [(mail, refusal) for (mail, _), refusal in tried if refusal is not None]
        sent = len(accepted)
        if accepted:
            await store.run(_sent, accepted)
        if result.error is not None:
            mail = built[len(result.refusals)][0]
            failed = 1
            log.warning(
                "ticket mail %d not sent (attempt %d): %s",
                mail.id,
                mail.attempts + 1,
                type(result.error).__name__,
            )
            metrics.ERRORS.labels("ticket_mail").inc()
            await store.run(_failed, mail.id, mail.attempts + 1, str(result.error), now())
    for mail, why in parked:
        log.error("ticket mail %d parked, it cannot be sent as it is: %s", mail.id, why)
        metrics.ERRORS.labels("ticket_mail_parked").inc()
        await store.run(_park, mail.id, mail.attempts + 1, why, now())
    waiting, parked_now = await store.run(_counts)
    metrics.MAIL_QUEUE.set(waiting)
    metrics.MAIL_PARKED.set(parked_now)
    return DeliveryReport(sent, failed, waiting, len(parked))
