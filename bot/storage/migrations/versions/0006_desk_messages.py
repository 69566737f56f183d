"""Which other messages in the agents' chats belong to a ticket (desk_messages).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "desk_messages",
        sa.Column("chat_kind", sa.String(32), primary_key=True),
        sa.Column("chat_id", sa.String(255), primary_key=True),
        sa.Column("message_ref", sa.String(255), primary_key=True),
        sa.Column(
            "ticket_number",
            sa.Integer,
            sa.ForeignKey("tickets.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_desk_messages_ticket_number", "desk_messages", ["ticket_number"])


def downgrade() -> None:
    op.drop_table("desk_messages")
