"""The clock helpers every package may import (a leaf: it imports nothing of Lotse).

Times are timezone-aware UTC everywhere. SQLite hands timezone-aware columns back naive (they
hold UTC, written by `utcnow`); `as_utc` makes them aware again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload

__all__ = ["as_utc", "utcnow"]


def utcnow() -> datetime:
    return datetime.now(UTC)


@overload
def as_utc(value: datetime) -> datetime: ...
@overload
def as_utc(value: None) -> None: ...
@overload
def as_utc(value: datetime | None) -> datetime | None: ...
def as_utc(value: datetime | None) -> datetime | None:
    """`value` with UTC as its zone when it has none (SQLite's), else unchanged; None stays."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
