"""Floods and outages: a per-user ticket limit that survives /loeschen, incident tickets for
a server error many users see, and the agents' chat queue in the channel outbox (per ticket,
held for merging, new cards first).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("requester_key", sa.String(64)))
        batch.add_column(sa.Column("incident_key", sa.String(255)))
        batch.add_column(sa.Column("incident_seen_at", sa.DateTime(timezone=True)))
    op.create_index("ix_tickets_requester_key", "tickets", ["requester_key", "created_at"])
    op.create_index("ix_tickets_incident_key", "tickets", ["incident_key"])
    op.create_table(
        "incident_reports",
        sa.Column(
            "ticket_id",
            sa.Integer,
            sa.ForeignKey("tickets.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("user_key", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("channel_outbox") as batch:
        batch.add_column(sa.Column("ticket_id", sa.Integer))
        batch.add_column(sa.Column("due_at", sa.DateTime(timezone=True)))
        batch.add_column(
            sa.Column("new_ticket", sa.Boolean, nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("channel_outbox") as batch:
        batch.drop_column("new_ticket")
        batch.drop_column("due_at")
        batch.drop_column("ticket_id")
    op.drop_table("incident_reports")
    op.drop_index("ix_tickets_incident_key", "tickets")
    op.drop_index("ix_tickets_requester_key", "tickets")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("incident_seen_at")
        batch.drop_column("incident_key")
        batch.drop_column("requester_key")
