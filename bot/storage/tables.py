"""Database tables: users, their conversation (state), and the redacted transcript."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bot.clock import utcnow as utcnow  # re-exported: the tables' users read it here

__all__ = [
    "Base",
    "ChannelOutboxRow",
    "Conversation",
    "DeskMessage",
    "HandoffLink",
    "IncidentReport",
    "JobLease",
    "Message",
    "OutgoingMail",
    "Ticket",
    "TicketCard",
    "TicketMessage",
    "User",
]


class Base(DeclarativeBase):
    pass


class User(Base):
    """A chat user, known only by channel and the platform's pseudonymous id."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("channel", "external_id", name="uq_users_channel_external"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(255))
    locale: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Set when the platform refused a message because the user blocked the bot (Telegram's
    # 403); cleared when they write again. Nobody sends to a blocked user meanwhile.
    blocked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Conversation(Base):
    """Where one user stands; `version` guards against two writers saving over each other."""

    __tablename__ = "conversations"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    knowledge_revision: Mapped[str | None] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Message(Base):
    """One message of the transcript, redacted before it was stored."""

    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_conversation_id_id", "conversation_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    direction: Mapped[str] = mapped_column(String(3))  # "in" from the user, "out" from the bot
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class JobLease(Base):
    """Which instance runs a periodic job (retention, mail queue) and when it last finished.

    Several `lotse serve` processes share one database; a job runs where a lease is taken by a
    conditional update, so the same job never runs twice at once and a daily job runs once a
    day for all instances together.
    """

    __tablename__ = "job_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(128))  # instance id while it runs
    leased_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# --- tickets: the hand-over to helpdesk agents (bot/tickets) ------------------------------


class Ticket(Base):
    """A hand-over to a human agent. The user is named by channel and pseudonymous id, not by a
    foreign key, so deleting a user's conversation leaves the helpdesk's statistics intact."""

    __tablename__ = "tickets"
    __table_args__ = (
        Index("ix_tickets_user", "channel", "user_external_id", "status"),
        Index("ix_tickets_requester_key", "requester_key", "created_at"),
        Index("ix_tickets_incident_key", "incident_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)  # the ticket number agents see
    status: Mapped[str] = mapped_column(String(16))  # new | open | waiting | closed
    reason: Mapped[str] = mapped_column(String(32))  # requested | stuck | unknown_program | ...
    channel: Mapped[str] = mapped_column(String(32))
    # None once the transcript was purged (retention); the row keeps its statistics.
    user_external_id: Mapped[str | None] = mapped_column(String(255))
    locale: Mapped[str] = mapped_column(String(16))
    program: Mapped[str | None] = mapped_column(String(64))
    version: Mapped[str | None] = mapped_column(String(64))
    guide: Mapped[str | None] = mapped_column(String(64))
    step: Mapped[int | None] = mapped_column()  # 1-based step reached, None outside a guide
    last_check: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    assignee: Mapped[str | None] = mapped_column(String(255))
    external_ref: Mapped[str | None] = mapped_column(String(255))
    mail_thread_id: Mapped[str] = mapped_column(String(255))  # Message-ID of the first mail
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    taken_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    first_answer_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    purged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Who asked, hashed, kept past /loeschen for the per-user ticket limit's window only.
    requester_key: Mapped[str | None] = mapped_column(String(64))
    # A server error many users see: the finding this ticket stands for while the outage
    # lasts (None once a check found the server healthy), and when it was last reported.
    incident_key: Mapped[str | None] = mapped_column(String(255))
    incident_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class IncidentReport(Base):
    """A user whose check found the same server error as an incident ticket: counted once per
    user (hashed key, deleted with their data), so agents see how many are affected."""

    __tablename__ = "incident_reports"

    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True
    )
    user_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TicketMessage(Base):
    """The ticket's own redacted transcript: the conversation before the hand-over (copied),
    then what the user, Lotse and agents wrote while the ticket was active."""

    __tablename__ = "ticket_messages"
    __table_args__ = (Index("ix_ticket_messages_ticket_id_id", "ticket_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    direction: Mapped[str] = mapped_column(String(8))  # "in" user, "out" Lotse, "agent"
    author: Mapped[str | None] = mapped_column(String(255))  # the agent, for "agent"
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class OutgoingMail(Base):
    """A mail to the helpdesk queue, written in the transaction of the event it reports and
    deleted once the mail server took it (it holds a transcript)."""

    __tablename__ = "mail_queue"
    __table_args__ = (Index("ix_mail_queue_next_attempt_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    recipient: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str] = mapped_column(String(998))
    body: Mapped[str] = mapped_column(Text)
    message_id: Mapped[str] = mapped_column(String(255))
    in_reply_to: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(String(500))
    # Set when the mail cannot be sent as it is (it cannot be built, or the server refused it
    # for good, 5xx): it waits aside with its error until `lotse tickets mail --retry`.
    parked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class HandoffLink(Base):
    """A hand-back link an agent made (`lotse handoff-link`): the guide it opens, the agent's
    reference, and who used it (a link works once)."""

    __tablename__ = "handoff_links"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # the token's random part
    guide: Mapped[str] = mapped_column(String(64))
    external_ref: Mapped[str | None] = mapped_column(String(255))
    mail_thread_id: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    channel: Mapped[str | None] = mapped_column(String(32))
    user_external_id: Mapped[str | None] = mapped_column(String(255))


class TicketCard(Base):
    """Which message is a ticket's card in one agents' chat (a Telegram message id, a Matrix
    event id), so every instance, and one restarted since, edits and replies to the same card."""

    __tablename__ = "ticket_cards"
    __table_args__ = (Index("ix_ticket_cards_message", "chat_kind", "chat_id", "message_ref"),)

    ticket_number: Mapped[int] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True
    )
    chat_kind: Mapped[str] = mapped_column(String(32), primary_key=True)  # telegram | matrix
    chat_id: Mapped[str] = mapped_column(String(255), primary_key=True)  # group id, room id
    message_ref: Mapped[str] = mapped_column(String(255))
    posted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DeskMessage(Base):
    """A message the desk posted about one ticket other than its card (a relayed user message,
    an agent's answer shown to the other chats, a status line): an agent's reply to it answers
    that ticket, on any instance. The bot's other messages (the list, the help, error answers,
    notices) are never recorded, so a reply to them never reaches a user."""

    __tablename__ = "desk_messages"

    chat_kind: Mapped[str] = mapped_column(String(32), primary_key=True)  # telegram | matrix
    chat_id: Mapped[str] = mapped_column(String(255), primary_key=True)  # group id, room id
    message_ref: Mapped[str] = mapped_column(String(255), primary_key=True)
    ticket_number: Mapped[int] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), index=True
    )
    posted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ChannelOutboxRow(Base):
    """A push to a user ("user") or a ticket event for the agents' chat ("agents") of a channel
    another instance runs (Matrix: the holder of the lease "channel:matrix"), delivered by that
    instance in `id` order (bot/tickets/channel_outbox.py). Holds message text: delivered rows
    are purged after a day."""

    __tablename__ = "channel_outbox"
    __table_args__ = (Index("ix_channel_outbox_pending", "channel", "delivered_at", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))  # user | agents
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(default=0)  # failed ones; none after MAX_ATTEMPTS
    # A deliverer's claim: rows claimed by one are skipped by others until `claimed_until`.
    claim: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The ticket a row is about: rows of one ticket go out in order, tickets take turns.
    ticket_id: Mapped[int | None] = mapped_column()
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # not before
    new_ticket: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
