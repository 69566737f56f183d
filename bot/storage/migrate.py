"""Alembic migrations, run from code: `lotse db upgrade` and at every start of the bot.

Several instances may start at once (`docker compose up --scale bot=2`, a rolling restart): on
PostgreSQL the upgrade holds an advisory lock until its transaction ends, so one instance
migrates and the others wait, then find the schema current and do nothing.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text

__all__ = [
    "MIGRATIONS_DIR",
    "MIGRATION_LOCK_KEY",
    "advisory_lock_key",
    "alembic_config",
    "upgrade",
    "user_lock_key",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def advisory_lock_key(name: str) -> int:
    """A PostgreSQL advisory lock key (signed 64 bits) for `name`; collisions only serialise."""
    digest = hashlib.blake2b(name.encode(), digest_size=8, person=b"lotse").digest()
    return int.from_bytes(digest, "big", signed=True)


MIGRATION_LOCK_KEY = advisory_lock_key("migrations")


def user_lock_key(channel: str, external_id: str) -> int:
    """The key of one user's turn lock (see `Store.turn`)."""
    return advisory_lock_key(f"turn\0{channel}\0{external_id}")


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # env.py runs the migrations on this connection instead of opening its own.
    config.attributes["connection"] = connection
    return config


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Migrate the database behind `connection` (run it through `Store.run`)."""
    if connection.dialect.name == "postgresql":
        # Released with the transaction `Store.run` commits; Alembic joins that transaction.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    command.upgrade(alembic_config(connection), revision)
