"""Delivering the ticket mail queue (`mail_queue`): oldest first, retried with backoff.

A mail leaves the queue only when the mail server accepted it. While the server is down each
mail waits 30 s, 1 min, 2 min, ... up to an hour between attempts; nothing is dropped.
"""

from __future__ import annotations

import asyncio
import email.policy
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Protocol

from sqlalchemy import Connection, delete, select, update

from bot import metrics
from bot.storage.store import Store
from bot.storage.tables import OutgoingMail, utcnow
from bot.tickets.models import utc
from bot.tickets.records import queued_mails
from bot.tickets.smtp import BatchResult

log = logging.getLogger(__name__)

BATCH = 50
# Unfolded headers: folding a long encoded subject made some readers see a doubled space.
_POLICY = email.policy.SMTP.clone(max_line_length=998)
FIRST_RETRY = 30.0  # seconds
LONGEST_RETRY = 3600.0


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
        message["From"] = self.sender
        message["To"] = self.recipient
        message["Subject"] = self.subject
        message["Date"] = format_datetime(self.created_at)
        message["Message-ID"] = self.message_id
        if self.in_reply_to:
            # Both, so mail clients and ticket systems (References) thread the follow-ups.
            message["In-Reply-To"] = self.in_reply_to
            message["References"] = self.in_reply_to
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(self.body)  # UTF-8, quoted-printable or base64 as needed
        return message


@dataclass(frozen=True)
class DeliveryReport:
    sent: int
    failed: int
    waiting: int  # still queued afterwards


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
        .where(OutgoingMail.next_attempt_at <= now)
        .order_by(OutgoingMail.id)
        .limit(BATCH)
    ).all()
    return [
        QueuedMail(i, sender, r, s, b, m, irt, utc(c) or c, a) for i, r, s, b, m, irt, c, a in rows
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


async def deliver_queue(
    store: Store,
    sender: MailSender,
    sender_address: str,
    *,
    now: Callable[[], datetime] = utcnow,
) -> DeliveryReport:
    """Send what is due over one connection; stop at the first failure (the server is likely
    down for all)."""
    due = await store.run(_due, now(), sender_address)
    sent = failed = 0
    if due:
        result = await asyncio.to_thread(sender.send_batch, [mail.message() for mail in due])
        sent = result.sent
        if result.sent:
            await store.run(_sent, [mail.id for mail in due[: result.sent]])
        if result.error is not None:
            mail = due[result.sent]
            failed = 1
            log.warning(
                "ticket mail %d not sent (attempt %d): %s",
                mail.id,
                mail.attempts + 1,
                type(result.error).__name__,
            )
            metrics.ERRORS.labels("ticket_mail").inc()
            await store.run(_failed, mail.id, mail.attempts + 1, str(result.error), now())
    waiting = await store.run(queued_mails)
    metrics.MAIL_QUEUE.set(waiting)
    return DeliveryReport(sent, failed, waiting)
