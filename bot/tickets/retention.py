"""Retention (DSGVO): delete what is no longer needed.

- Conversations (with their user and transcript) whose last message is older than
  LOTSE_RETENTION_DAYS, unless the user has a ticket whose transcript is still kept.
- Transcripts of tickets closed longer than LOTSE_TICKET_RETENTION_DAYS ago; the ticket row
  stays for the statistics (reason, program, times) without the user's id.
- Hand-back links that expired before the conversation retention period.
- Ticket mail still queued after LOTSE_TICKET_RETENTION_DAYS (a mail server that never came).
- Before that, tickets nobody moves any more are closed (with their mail), so that they stop
  keeping the user's conversation: "waiting" ones (back with Lotse) after WAITING_CLOSE_DAYS
  without a message, "new" ones (never taken) after LOTSE_TICKET_RETENTION_DAYS.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Connection, and_, delete, exists, func, or_, select, update

from bot.clock import utcnow
from bot.i18n import Translator
from bot.storage.store import Store
from bot.storage.tables import (
    Conversation,
    HandoffLink,
    IncidentReport,
    Message,
    OutgoingMail,
    Ticket,
    TicketMessage,
    User,
)
from bot.tickets import channel_outbox

__all__ = ["WAITING_CLOSE_DAYS", "PurgeReport", "purge", "run_purge"]

if TYPE_CHECKING:  # the service is only passed in
    from bot.tickets.service import TicketService

WAITING_CLOSE_DAYS = 14


@dataclass(frozen=True)
class PurgeReport:
    users: int
    messages: int
    ticket_transcripts: int
    ticket_messages: int
    links: int
    mails: int
    closed_tickets: int = 0

    def lines(self, tr: Translator) -> list[str]:
        _ = tr.gettext
        return [
            _("Liegen gebliebene Tickets geschlossen: {count}").format(count=self.closed_tickets),
            _("Gespräche ohne Ticket gelöscht: {count} (mit {messages} Nachrichten)").format(
                count=self.users, messages=self.messages
            ),
            _(
                "Verläufe geschlossener Tickets gelöscht: {count} (mit {messages} Nachrichten)"
            ).format(count=self.ticket_transcripts, messages=self.ticket_messages),
            _("Abgelaufene Übergabe-Links gelöscht: {count}").format(count=self.links),
            _("Nie zugestellte Ticket-Mails gelöscht: {count}").format(count=self.mails),
        ]


def purge(
    conn: Connection, now: datetime, retention_days: int, ticket_retention_days: int
) -> PurgeReport:
    conversation_cutoff = now - timedelta(days=retention_days)
    ticket_cutoff = now - timedelta(days=ticket_retention_days)

    # Tickets first: a purged ticket no longer keeps its user's conversation.
    old_tickets = list(
        conn.execute(
            select(Ticket.id).where(
                Ticket.status == "closed",
                Ticket.closed_at < ticket_cutoff,
                Ticket.purged_at.is_(None),
            )
        ).scalars()
    )
    ticket_messages = 0
    if old_tickets:
        ticket_messages = conn.execute(
            delete(TicketMessage).where(TicketMessage.ticket_id.in_(old_tickets))
        ).rowcount
        # The users an incident counted (hashed ids) go with the transcript.
        conn.execute(delete(IncidentReport).where(IncidentReport.ticket_id.in_(old_tickets)))
        conn.execute(
            update(Ticket)
            .where(Ticket.id.in_(old_tickets))
            .values(user_external_id=None, purged_at=now, requester_key=None)
        )

    last_message = (
        select(func.max(Message.created_at))
        .where(Message.conversation_id == Conversation.id)
        .scalar_subquery()
    )
    kept_ticket = exists().where(
        Ticket.channel == User.channel,
        Ticket.user_external_id == User.external_id,
        Ticket.purged_at.is_(None),
    )
    stale_users = list(
        conn.execute(
            select(User.id)
            .join(Conversation, Conversation.user_id == User.id, isouter=True)
            .where(
                or_(
                    and_(Conversation.id.is_(None), User.created_at < conversation_cutoff),
                    func.coalesce(last_message, Conversation.updated_at) < conversation_cutoff,
                ),
                ~kept_ticket,
            )
        ).scalars()
    )
    messages = 0
    if stale_users:
        conversations = select(Conversation.id).where(Conversation.user_id.in_(stale_users))
        messages = conn.execute(
            delete(Message).where(Message.conversation_id.in_(conversations))
        ).rowcount
        conn.execute(delete(Conversation).where(Conversation.user_id.in_(stale_users)))
        conn.execute(delete(User).where(User.id.in_(stale_users)))

    links = conn.execute(
        delete(HandoffLink).where(HandoffLink.expires_at < conversation_cutoff)
    ).rowcount
    # Transcripts inside: no older than the tickets' own.
    mails = conn.execute(delete(OutgoingMail).where(OutgoingMail.created_at < ticket_cutoff))
    channel_outbox.purge(conn, now)  # pushes for another instance's channel hold text too
    return PurgeReport(
        len(stale_users), messages, len(old_tickets), ticket_messages, links, mails.rowcount
    )


async def run_purge(
    store: Store,
    retention_days: int,
    ticket_retention_days: int,
    now: datetime | None = None,
    *,
    tickets: TicketService | None = None,
) -> PurgeReport:
    """Close idle tickets (with `tickets`: their mail and the agents' events), then purge."""
    now = now or utcnow()
    closed = []
    if tickets is not None:
        closed = await tickets.close_idle(now, WAITING_CLOSE_DAYS, ticket_retention_days)
    report = await store.run(purge, now, retention_days, ticket_retention_days)
    return replace(report, closed_tickets=len(closed))
