"""What a store's back end is (one per database), and the errors and retries they share.

`Store` (bot/storage/store.py) keeps the API the rest of Lotse uses and the turn cache; a
back end runs transactions where its database wants them: `SQLiteBackend` in a worker thread,
`PostgresBackend` on asyncpg with the per-user turn lock. Both run the same transaction
functions (bot/storage/transactions.py).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeVar

from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError

from bot import metrics
from bot.retry import Backoff, retry
from bot.storage.transactions import TurnStart

__all__ = [
    "WRITE_DEADLINE",
    "Backend",
    "MessageNotStored",
    "StoreBusy",
    "retrying",
    "transient",
]

T = TypeVar("T")

WRITE_DEADLINE = 15.0  # seconds a transaction keeps trying while the database is locked


class StoreBusy(Exception):
    """The database stayed locked (or its connections busy) for longer than the store's
    `write_deadline`, retries included: nothing of this transaction was saved."""


class MessageNotStored(StoreBusy):
    """`begin_turn` could not store the user's message: the user must be told, truthfully."""


# A lock held elsewhere, a deadlock or a serialization failure: gone by itself in a moment.
_TRANSIENT_SQLSTATES = frozenset({"55P03", "40P01", "40001"})


def transient(error: BaseException) -> bool:
    """A database error worth trying again after a pause: SQLite locked or busy, a PostgreSQL
    lock timeout (`lock_timeout`), deadlock or serialization failure, no free connection."""
    seen: BaseException | None = error
    for _depth in range(4):  # SQLAlchemy wraps the driver's error, asyncpg's adapter wraps again
        if seen is None:
            return False
        if isinstance(seen, SQLAlchemyTimeoutError):
            return True
        if isinstance(seen, sqlite3.OperationalError):
            message = str(seen)
            return "locked" in message or "busy" in message
        if getattr(seen, "sqlstate", None) in _TRANSIENT_SQLSTATES:
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False


async def retrying(call: Callable[[], Awaitable[T]], deadline: float) -> T:
    """`call` (one transaction, rolled back when it fails) again after a growing pause while
    the database is locked; `StoreBusy` once `deadline` seconds have passed."""
    try:
        return await retry(
            call,
            retry_on=transient,
            what="a database transaction",
            deadline=deadline,
            backoff=Backoff(0.05, maximum=1.0),
        )
    except Exception as error:
        if transient(error):
            metrics.ERRORS.labels("store_busy").inc()
            raise StoreBusy(f"database locked for over {deadline:g} s") from error
        raise


class Backend(Protocol):
    """One database's way of running the store's transactions. Each call is one transaction,
    tried again while the database is locked (`retrying`), then `StoreBusy`."""

    @property
    def dialect(self) -> str: ...

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        """`work(connection, *args)` in one transaction."""
        ...

    async def in_turn(self, work: Callable[..., T], *args: Any) -> T:
        """`run`, on the turn's own connection when called inside this back end's `turn`."""
        ...

    def turn(self, channel: str, external_id: str) -> AbstractAsyncContextManager[None]:
        """One user's turn: no other instance runs one for them meanwhile (where the
        database can promise that)."""
        ...

    async def continue_turn(self, cached: TurnStart, inbound_text: str) -> TurnStart:
        """`transactions.continue_turn`; `IntegrityError` when the conversation was deleted
        meanwhile."""
        ...

    async def finish_turn(
        self, start: TurnStart, state: dict[str, Any], revision: str | None, replies: Sequence[str]
    ) -> TurnStart:
        """`transactions.finish_turn`; `ConcurrentUpdate` when another writer saved first."""
        ...

    async def close(self) -> None: ...
