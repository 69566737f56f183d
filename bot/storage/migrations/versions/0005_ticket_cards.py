"""Which message is a ticket's card in each agents' chat (ticket_cards).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ticket_cards",
        sa.Column(
            "ticket_number",
            sa.Integer,
            sa.ForeignKey("tickets.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("chat_kind", sa.String(32), primary_key=True),
        sa.Column("chat_id", sa.String(255), primary_key=True),
        sa.Column("message_ref", sa.String(255), nullable=False),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_ticket_cards_message", "ticket_cards", ["chat_kind", "chat_id", "message_ref"]
    )


def downgrade() -> None:
    op.drop_table("ticket_cards")
