"""Mark users who blocked the bot (users.blocked_at).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("blocked_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # SQLite before 3.35 cannot drop a column in place; batch mode copies the table.
    with op.batch_alter_table("users") as batch:
        batch.drop_column("blocked_at")
