"""Tickets, their transcripts, the ticket mail queue and hand-back links.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = True) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "tickets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("user_external_id", sa.String(255), nullable=True),
        sa.Column("locale", sa.String(16), nullable=False),
        sa.Column("program", sa.String(64), nullable=True),
        sa.Column("version", sa.String(64), nullable=True),
        sa.Column("guide", sa.String(64), nullable=True),
        sa.Column("step", sa.Integer, nullable=True),
        sa.Column("last_check", sa.JSON, nullable=True),
        sa.Column("assignee", sa.String(255), nullable=True),
        sa.Column("external_ref", sa.String(255), nullable=True),
        sa.Column("mail_thread_id", sa.String(255), nullable=False),
        _when("created_at", nullable=False),
        _when("taken_at"),
        _when("first_answer_at"),
        _when("closed_at"),
        _when("purged_at"),
    )
    op.create_index("ix_tickets_user", "tickets", ["channel", "user_external_id", "status"])
    op.create_table(
        "ticket_messages",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "ticket_id",
            sa.Integer,
            sa.ForeignKey("tickets.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("author", sa.String(255), nullable=True),
        sa.Column("text", sa.Text, nullable=False),
        _when("created_at", nullable=False),
    )
    op.create_index("ix_ticket_messages_ticket_id_id", "ticket_messages", ["ticket_id", "id"])
    op.create_table(
        "mail_queue",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("recipient", sa.String(255), nullable=False),
        sa.Column("subject", sa.String(998), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("message_id", sa.String(255), nullable=False),
        sa.Column("in_reply_to", sa.String(255), nullable=True),
        _when("created_at", nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        _when("next_attempt_at", nullable=False),
        sa.Column("last_error", sa.String(500), nullable=True),
    )
    op.create_index("ix_mail_queue_next_attempt_at", "mail_queue", ["next_attempt_at"])
    op.create_table(
        "handoff_links",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("guide", sa.String(64), nullable=False),
        sa.Column("external_ref", sa.String(255), nullable=True),
        sa.Column("mail_thread_id", sa.String(255), nullable=False),
        _when("created_at", nullable=False),
        _when("expires_at", nullable=False),
        _when("used_at"),
        sa.Column("channel", sa.String(32), nullable=True),
        sa.Column("user_external_id", sa.String(255), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("handoff_links")
    op.drop_table("mail_queue")
    op.drop_table("ticket_messages")
    op.drop_table("tickets")
