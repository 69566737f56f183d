"""The clock helpers every package may import (a leaf: it imports nothing of Lotse).

Times are timezone-aware UTC everywhere. SQLite hands timezone-aware columns back naive (they
hold UTC, written by `utcnow`); `as_utc` makes them aware again.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["as_utc", "utcnow"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """`value` with UTC as its zone when it has none (SQLite's), else unchanged."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
