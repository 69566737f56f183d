"""Pushes and agents' events for a channel another instance runs (channel_outbox).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "channel_outbox",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("claim", sa.String(64)),
        sa.Column("claimed_until", sa.DateTime(timezone=True)),
    )
    op.create_index(
        "ix_channel_outbox_pending", "channel_outbox", ["channel", "delivered_at", "id"]
    )


def downgrade() -> None:
    op.drop_table("channel_outbox")
