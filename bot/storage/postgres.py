"""The PostgreSQL back end: asyncpg through SQLAlchemy's async engine, and the per-user turn lock.

Several instances on one PostgreSQL: `turn` holds a per-user advisory lock for the whole turn,
on a connection of a small pool of its own, so one user's turns never interleave (the
transcript reads in, out, in, out) whichever instance takes them. The turn's own work runs on
that same connection; a returning user's turn is four round trips there: lock, one statement
that stores the message and checks the cached state, one that saves state and replies, unlock.
Those two statements are the transactions' own statements (bot/storage/transactions.py),
composed into one each and compiled once for asyncpg.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import URL, Text, bindparam, event, func, insert, literal, select, true
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

from bot import metrics
from bot.clock import utcnow
from bot.storage import transactions
from bot.storage.backend import WRITE_DEADLINE, retrying
from bot.storage.errors import hide_argument_values, on_engine_error
from bot.storage.migrate import upgrade, user_lock_key
from bot.storage.tables import Conversation, Message
from bot.storage.transactions import (
    SAVE_STATE,
    STORE_MESSAGE,
    TURN_VERSION,
    ConcurrentUpdate,
    TurnStart,
)

__all__ = ["PostgresBackend"]

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Compiled:
    """A statement compiled once for asyncpg: its SQL and the order of its parameters."""

    sql: str
    names: tuple[str, ...]
    constants: dict[str, Any]  # values written into the statement (such as 'in')

    @classmethod
    def of(cls, statement: ClauseElement) -> _Compiled:
        compiled = statement.compile(dialect=asyncpg_dialect())  # type: ignore[no-untyped-call]
        assert isinstance(compiled, SQLCompiler)
        names = tuple(compiled.positiontup or ())
        constants = {name: value for name, value in compiled.params.items() if value is not None}
        return cls(compiled.string, names, constants)

    def arguments(self, **values: Any) -> list[Any]:
        return [values[name] if name in values else self.constants[name] for name in self.names]


# A returning user's turn, one statement (its own transaction) each, prepared once per
# connection by asyncpg. The message goes in, and the saved version comes back (with the
# state only when another instance saved a newer one).
_CONTINUE_TURN = _Compiled.of(
    TURN_VERSION.add_cte(STORE_MESSAGE.values(direction="in").cte("inbound"))
)
# The state under the version guard; the replies in their order (ids from the sequence follow
# ORDER BY), only when the guard let the update through; the count says whether it did.
_saved = SAVE_STATE.returning(Conversation.id).cte("saved")
_reply = (
    func.unnest(bindparam("replies", type_=ARRAY(Text)))
    .table_valued("text", with_ordinality="position")
    .render_derived("reply")
)
_FINISH_TURN = _Compiled.of(
    select(func.count())
    .select_from(_saved)
    .add_cte(
        insert(Message)
        .from_select(
            ["conversation_id", "direction", "text", "created_at"],
            select(_saved.c.id, literal("out"), _reply.c.text, bindparam("now"))
            .select_from(_saved)
            .join(_reply, true())
            .order_by(_reply.c.position),
        )
        .cte("replies")
    )
)

_TURN_LOCK = "SELECT pg_advisory_lock($1)"
_TURN_UNLOCK = "SELECT pg_advisory_unlock($1)"


@dataclass(frozen=True)
class _TurnConnection:
    """The connection a turn holds (with the user's lock) for its own work."""

    backend: PostgresBackend
    conn: AsyncConnection
    raw: Any  # asyncpg's connection under `conn`, for the turn's two hot statements


# Set by `turn` for the task running the turn; nested turns of other back ends (two instances
# in one test process) each find their own by `backend`.
_CURRENT_TURN: ContextVar[_TurnConnection | None] = ContextVar("lotse_turn", default=None)


async def _driver_connection(conn: AsyncConnection) -> Any:
    raw = (await conn.get_raw_connection()).driver_connection
    assert raw is not None
    return raw


class PostgresBackend:
    """Transactions through `AsyncConnection.run_sync`; a turn on a connection of its own."""

    # Connections for turns: a turn holds one from its lock to its unlock, NLU included (at
    # most LOTSE_RASA_TIMEOUT per parse), so this many users' turns run at once per instance
    # and the rest wait for a connection (up to TURN_POOL_TIMEOUT; then the turn runs without
    # the lock rather than fail: the user's message must not be lost, and the version check
    # still keeps the state right). A pool apart from `run`'s, so a turn never waits for a
    # connection it holds.
    TURN_POOL_SIZE = 10
    TURN_POOL_TIMEOUT = 5.0  # seconds

    def __init__(
        self, url: URL, *, turn_locks: bool = True, write_deadline: float = WRITE_DEADLINE
    ) -> None:
        self.write_deadline = write_deadline
        self._turn_locks = turn_locks
        self._engine = create_async_engine(url, pool_pre_ping=True, hide_parameters=True)
        # No pre-ping: it would add a round trip to every turn. A connection the server
        # dropped fails one turn; SQLAlchemy then renews the whole pool. No reset either:
        # a connection goes back only idle, outside a transaction and unlocked (`turn`).
        self._turn_engine = create_async_engine(
            url,
            pool_size=self.TURN_POOL_SIZE,
            max_overflow=0,
            pool_timeout=self.TURN_POOL_TIMEOUT,
            pool_reset_on_return=None,
            hide_parameters=True,
        )
        for engine in (self._engine, self._turn_engine):
            event.listen(engine.sync_engine, "handle_error", on_engine_error)

    @classmethod
    async def open(
        cls,
        url: URL,
        *,
        migrate: bool = True,
        turn_locks: bool = True,
        write_deadline: float = WRITE_DEADLINE,
    ) -> PostgresBackend:
        backend = cls(url, turn_locks=turn_locks, write_deadline=write_deadline)
        if migrate:
            await backend.run(upgrade)
        return backend

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        async def once() -> T:
            async with self._engine.begin() as conn:
                return await conn.run_sync(work, *args)

        return await retrying(once, self.write_deadline)

    async def in_turn(self, work: Callable[..., T], *args: Any) -> T:
        turn = _CURRENT_TURN.get()
        if turn is None or turn.backend is not self:
            return await self.run(work, *args)

        async def once() -> T:
            async with turn.conn.begin():
                return await turn.conn.run_sync(work, *args)

        return await retrying(once, self.write_deadline)

    @asynccontextmanager
    async def turn(self, channel: str, external_id: str) -> AsyncIterator[None]:
        """A session-level advisory lock on a connection the turn holds, and the turn's work
        (`in_turn`, `continue_turn`, `finish_turn`) on that connection (no checkout, no ping,
        no BEGIN/COMMIT for the lock). Between its statements the connection idles outside
        any transaction, also while NLU runs. The lock goes back with an unlock; when that
        cannot be trusted (cancellation, a broken connection), the connection is closed, and
        the server frees the lock with the session."""
        async with AsyncExitStack() as stack:
            conn: AsyncConnection | None
            try:
                conn = await stack.enter_async_context(self._turn_engine.connect())
            except SQLAlchemyTimeoutError:
                log.warning("all turn connections busy: a turn runs without the user lock")
                metrics.ERRORS.labels("turn_pool_exhausted").inc()
                conn = None
            if conn is None:
                yield
                return
            raw = await _driver_connection(conn)
            key = user_lock_key(channel, external_id)
            token = _CURRENT_TURN.set(_TurnConnection(self, conn, raw))
            try:
                if self._turn_locks:
                    await raw.execute(_TURN_LOCK, key)
                yield
            finally:
                _CURRENT_TURN.reset(token)
                await self._end_turn(conn, raw, key)

    async def _end_turn(self, conn: AsyncConnection, raw: Any, key: int) -> None:
        """Unlock, or close the connection so that no lock can go back into the pool."""
        unlocked = False
        try:
            task = asyncio.current_task()
            # Cancelled mid-statement, the connection may still be busy with it.
            if not raw.is_closed() and not (task is not None and task.cancelling()):
                unlocked = not self._turn_locks or await raw.fetchval(_TURN_UNLOCK, key) is True
        except Exception as error:  # a broken connection; closing it below frees the lock
            log.warning("turn unlock failed: %s", type(error).__name__)
        finally:
            if not unlocked:
                await conn.invalidate()

    @asynccontextmanager
    async def _driver(self) -> AsyncIterator[Any]:
        """asyncpg's connection: the turn's, or one of the turn pool's outside a turn."""
        turn = _CURRENT_TURN.get()
        try:
            if turn is not None and turn.backend is self:
                yield turn.raw
            else:
                async with self._turn_engine.connect() as conn:
                    yield await _driver_connection(conn)
        except asyncpg.DataError as error:  # asyncpg's own text may quote the user
            hide_argument_values(error)
            raise

    async def _fetch(self, statement: _Compiled, **values: Any) -> Any:
        async def once() -> Any:
            async with self._driver() as raw:
                return await raw.fetchrow(statement.sql, *statement.arguments(**values))

        return await retrying(once, self.write_deadline)

    async def continue_turn(self, cached: TurnStart, inbound_text: str) -> TurnStart:
        try:
            row = await self._fetch(
                _CONTINUE_TURN,
                conversation=cached.conversation_id,
                text=inbound_text,
                now=utcnow(),
                cached_version=cached.version,
            )
        except asyncpg.ForeignKeyViolationError as error:  # deleted meanwhile
            raise IntegrityError("conversation deleted", None, error) from error
        return transactions.continued(cached, row)

    async def finish_turn(
        self, start: TurnStart, state: dict[str, Any], revision: str | None, replies: Sequence[str]
    ) -> TurnStart:
        """`transactions.finish_turn` as one statement: one round trip, no BEGIN/COMMIT."""
        now = utcnow()
        row = await self._fetch(
            _FINISH_TURN,
            conversation=start.conversation_id,
            expected_version=start.version,
            new_state=json.dumps(state),  # as SQLAlchemy's JSON type writes it
            revision=revision,
            now=now,
            replies=list(replies),
        )
        if row[0] != 1:
            raise ConcurrentUpdate(f"conversation {start.conversation_id} changed meanwhile")
        return transactions.saved(start, state, now)

    async def close(self) -> None:
        await self._engine.dispose()
        await self._turn_engine.dispose()
