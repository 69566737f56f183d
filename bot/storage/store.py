"""The store: users, conversation state and transcript, through SQLAlchemy 2.

A turn is two short transactions: `begin_turn` records the user's message before anything can
go wrong (nothing the user wrote is lost), `finish_turn` saves the new state and the replies.
No transaction stays open while the bot thinks (NLU calls may take a while).

Several instances on one PostgreSQL: `turn` holds a per-user advisory lock for the whole turn,
on a connection of a small pool of its own, so one user's turns never interleave (the
transcript reads in, out, in, out) whichever instance takes them. The turn's own work runs on
that same connection; a returning user's turn is four round trips there: lock, one statement
that stores the message and checks the cached state, one that saves state and replies, unlock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager, closing, suppress
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.orm import aliased

from bot import metrics
from bot.retry import Backoff, retry
from bot.storage.errors import hide_argument_values, on_engine_error
from bot.storage.migrate import upgrade, user_lock_key
from bot.storage.tables import Conversation, Message, User, utcnow

T = TypeVar("T")
log = logging.getLogger(__name__)


class ConcurrentUpdate(Exception):
    """Another writer saved this conversation first; the turn must be retried."""


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


@dataclass(frozen=True)
class TurnStart:
    channel: str
    external_id: str
    user_id: int
    conversation_id: int
    locale: str
    state: dict[str, Any] | None  # None for a conversation that has just begun
    version: int
    updated_at: datetime | None  # when the conversation was last saved, None when new


@dataclass(frozen=True)
class SavedConversation:
    state: dict[str, Any] | None  # None until the first turn is saved
    version: int  # counts saved turns; the guard of `finish_turn`


@dataclass(frozen=True)
class StoredMessage:
    direction: str
    text: str
    created_at: datetime


@dataclass(frozen=True)
class Stranded:
    """A user's message that no saved turn followed: its turn was cut off (the instance was
    stopped or killed mid-turn, or could not save), so the user has no answer to it."""

    start: TurnStart  # the conversation as saved, to answer it on
    text: str  # as stored (see ConversationService._transcript_text)
    created_at: datetime


def _utc(value: datetime) -> datetime:
    """SQLite returns naive datetimes for timezone-aware columns; they hold UTC (see utcnow)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


SQLITE_BUSY_SECONDS = 1.0
WRITE_DEADLINE = 15.0  # seconds a transaction keeps trying while the database is locked


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers and the writer work at once; NORMAL sync is safe with WAL.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Short: a write that meets a lock waits this long, then `Store._retrying` pauses and
    # tries again until the store's `write_deadline` (a lock SQLite cannot wait for, such as a
    # stale read snapshot in WAL mode, fails at once and is retried the same way).
    cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_SECONDS * 1000)}")
    # Checkpoints run in the background (Store._checkpoint_regularly), not inside a user's
    # turn: done by the committing connection they stalled one turn in a hundred by ~20 ms.
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


def _checkpoint(database: str, mode: str = "PASSIVE") -> None:
    """Copy the WAL into the database file, on a connection of its own (writers go on)."""
    with closing(sqlite3.connect(database, timeout=10)) as connection:
        connection.execute(f"PRAGMA wal_checkpoint({mode})")


def _make_parent_directory(database: str) -> None:
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True)
class _TurnConnection:
    """The PostgreSQL connection a turn holds (with the user's lock) for its own work."""

    store: Store
    conn: AsyncConnection
    raw: Any  # asyncpg's connection under `conn`, for the turn's two hot statements


# Set by `Store.turn` for the task running the turn; nested turns of other stores (two
# instances in one test process) each find their own by `store`.
_CURRENT_TURN: ContextVar[_TurnConnection | None] = ContextVar("lotse_turn", default=None)


async def _driver_connection(conn: AsyncConnection) -> Any:
    raw = (await conn.get_raw_connection()).driver_connection
    assert raw is not None
    return raw


class Store:
    """Async API over one set of transaction functions, run where each database wants them.

    Every transaction below is a plain function of a SQLAlchemy `Connection`, written once:
    - PostgreSQL: the asyncpg async engine runs it through `AsyncConnection.run_sync`.
    - SQLite: the standard `sqlite3` driver runs it in one worker thread of the store's own.
      SQLite has a single writer anyway, and one thread hop per transaction instead of
      aiosqlite's hop per statement measured 0.9 ms instead of 2.6 ms per save here.
    """

    # Conversations kept in memory after a save, so the next turn needs no read. Another
    # instance's save is caught by the version check in `finish_turn` (then `reload`).
    CACHE_SIZE = 10_000
    # Connections for turns (PostgreSQL): a turn holds one from its lock to its unlock, NLU
    # included (at most LOTSE_RASA_TIMEOUT per parse), so this many users' turns run at once
    # per instance and the rest wait for a connection (up to TURN_POOL_TIMEOUT; then the turn
    # runs without the lock rather than fail: the user's message must not be lost, and the
    # version check still keeps the state right). A pool apart from `run`'s, so a turn never
    # waits for a connection it holds.
    TURN_POOL_SIZE = 10
    TURN_POOL_TIMEOUT = 5.0  # seconds

    def __init__(
        self, url: str, *, turn_locks: bool = True, write_deadline: float = WRITE_DEADLINE
    ) -> None:
        self.write_deadline = write_deadline
        self._cache: OrderedDict[tuple[str, str], TurnStart] = OrderedDict()
        parsed = make_url(url)
        self._async_engine: AsyncEngine | None = None
        self._turn_engine: AsyncEngine | None = None
        self._turn_locks = turn_locks
        self._turns_in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._sync_engine: Engine | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._sqlite_connection: Connection | None = None
        self._checkpointer: asyncio.Task[None] | None = None
        if parsed.get_backend_name() == "sqlite":
            engine = create_engine(
                parsed.set(drivername="sqlite"), pool_size=1, max_overflow=0, hide_parameters=True
            )
            event.listen(engine, "connect", _sqlite_pragmas)
            event.listen(engine, "handle_error", on_engine_error)
            self._sync_engine = engine
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lotse-sqlite")
            self._sqlite_file = parsed.database if parsed.database != ":memory:" else None
        else:
            self._async_engine = create_async_engine(url, pool_pre_ping=True, hide_parameters=True)
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
            for async_engine in (self._async_engine, self._turn_engine):
                event.listen(async_engine.sync_engine, "handle_error", on_engine_error)
            self._sqlite_file = None

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        migrate: bool = True,
        turn_locks: bool = True,
        write_deadline: float = WRITE_DEADLINE,
    ) -> Store:
        """Connect (creating a SQLite file's directory) and bring the schema up to date.

        `turn_locks=False` leaves one user's turns to the version check alone (benchmarks,
        and the test that shows the lock is needed). A transaction that meets a locked
        database is tried again for up to `write_deadline` seconds, then `StoreBusy`.
        """
        store = cls(url, turn_locks=turn_locks, write_deadline=write_deadline)
        if store._sqlite_file:
            await store._in_thread(_make_parent_directory, store._sqlite_file)
        if migrate:
            await store.upgrade()
        if store._sqlite_file:
            store._checkpointer = asyncio.create_task(store._checkpoint_regularly())
        return store

    @property
    def dialect(self) -> str:
        engine = self._sync_engine or self._async_engine
        assert engine is not None
        return engine.dialect.name

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        """Run `work(connection, *args)` in one transaction (again while the database is
        locked, see `_retrying`)."""
        return await self._retrying(partial(self._run_once, work, *args))

    async def _run_once(self, work: Callable[..., T], *args: Any) -> T:
        if self._async_engine is not None:
            async with self._async_engine.begin() as conn:
                return await conn.run_sync(work, *args)
        return await self._in_thread(self._transaction, work, *args)

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        """`call` (one transaction, rolled back when it fails) again after a growing pause
        while the database is locked; `StoreBusy` once `write_deadline` has passed."""
        try:
            return await retry(
                call,
                retry_on=transient,
                what="a database transaction",
                deadline=self.write_deadline,
                backoff=Backoff(0.05, maximum=1.0),
            )
        except Exception as error:
            if transient(error):
                metrics.ERRORS.labels("store_busy").inc()
                raise StoreBusy(f"database locked for over {self.write_deadline:g} s") from error
            raise

    def _transaction(self, work: Callable[..., T], *args: Any) -> T:
        """In the SQLite thread: one connection for the store's life, one transaction per call."""
        assert self._sync_engine is not None
        if self._sqlite_connection is None:
            self._sqlite_connection = self._sync_engine.connect()
        conn = self._sqlite_connection
        try:
            with conn.begin():
                return work(conn, *args)
        except Exception:
            if conn.invalidated or conn.closed:
                self._sqlite_connection = None
            raise

    async def _in_thread(self, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, function, *args)

    def _close_sqlite(self) -> None:
        if self._sqlite_connection is not None:
            self._sqlite_connection.close()
            self._sqlite_connection = None
        assert self._sync_engine is not None
        self._sync_engine.dispose()

    async def upgrade(self) -> None:
        """Apply all Alembic migrations."""
        await self.run(upgrade)

    CHECKPOINT_INTERVAL = 1.0  # seconds

    async def _checkpoint_regularly(self) -> None:
        assert self._sqlite_file is not None
        while True:
            await asyncio.sleep(self.CHECKPOINT_INTERVAL)
            try:
                await asyncio.to_thread(_checkpoint, self._sqlite_file)
            except sqlite3.Error as error:  # busy or locked: the next round catches up
                log.warning("SQLite checkpoint failed: %s", error)

    @asynccontextmanager
    async def turn(self, channel: str, external_id: str) -> AsyncIterator[None]:
        """One user's turn: on PostgreSQL no other instance runs one for them meanwhile.

        A session-level advisory lock on a connection the turn holds, and `begin_turn`,
        `finish_turn` and `reload` inside the turn run on that connection (no checkout, no
        ping, no BEGIN/COMMIT for the lock). Between its statements the connection idles
        outside any transaction, also while NLU runs. The lock goes back with an unlock; when
        that cannot be trusted (cancellation, a broken connection), the connection is closed,
        and the server frees the lock with the session.
        """
        self._turns_in_flight += 1
        self._idle.clear()
        try:
            if self._turn_engine is None:
                yield
                return
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
                else:
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
        finally:
            self._turns_in_flight -= 1
            if self._turns_in_flight == 0:
                self._idle.set()

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

    async def _in_turn(self, work: Callable[..., T], *args: Any) -> T:
        """`run`, on the turn's connection when called inside this store's turn."""
        turn = _CURRENT_TURN.get()
        if turn is None or turn.store is not self:
            return await self.run(work, *args)

        async def once() -> T:
            async with turn.conn.begin():
                return await turn.conn.run_sync(work, *args)

        return await self._retrying(once)

    @asynccontextmanager
    async def _driver(self) -> AsyncIterator[Any]:
        """asyncpg's connection: the turn's, or one of the turn pool's outside a turn."""
        assert self._turn_engine is not None
        turn = _CURRENT_TURN.get()
        try:
            if turn is not None and turn.store is self:
                yield turn.raw
            else:
                async with self._turn_engine.connect() as conn:
                    yield await _driver_connection(conn)
        except asyncpg.DataError as error:  # asyncpg's own text may quote the user
            hide_argument_values(error)
            raise

    @property
    def turns_in_flight(self) -> int:
        return self._turns_in_flight

    async def drain(self, within: float) -> bool:
        """Wait up to `within` seconds for the turns under way; True when none is left."""
        try:
            await asyncio.wait_for(self._idle.wait(), within)
        except TimeoutError:
            return False
        return True

    async def ping(self) -> None:
        """One round trip to the database (health check); raises when it is not there."""
        await self.run(lambda conn: conn.execute(text("SELECT 1")).scalar_one())

    async def close(self) -> None:
        """Release connections; closing twice is harmless."""
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            with suppress(asyncio.CancelledError):
                await self._checkpointer
            self._checkpointer = None
        if self._async_engine is not None:
            await self._async_engine.dispose()
        if self._turn_engine is not None:
            await self._turn_engine.dispose()
        if self._thread is not None:
            await self._in_thread(self._close_sqlite)
            if self._sqlite_file:
                await asyncio.to_thread(_checkpoint, self._sqlite_file, "TRUNCATE")
            self._thread.shutdown(wait=True)
            self._thread = None

    async def begin_turn(
        self, channel: str, external_id: str, locale: str, inbound_text: str
    ) -> TurnStart:
        """Find or create user and conversation, and store the user's (redacted) message;
        `MessageNotStored` when the database stayed locked (see `_retrying`)."""
        try:
            cached = self._cache.get((channel, external_id))
            if cached is not None:
                try:
                    return await self._continue_turn(cached, inbound_text)
                except (IntegrityError, asyncpg.ForeignKeyViolationError):  # deleted meanwhile
                    self._forget(channel, external_id)
            return await self._in_turn(_begin_turn, channel, external_id, locale, inbound_text)
        except StoreBusy as busy:
            raise MessageNotStored(str(busy)) from busy

    async def _continue_turn(self, cached: TurnStart, inbound_text: str) -> TurnStart:
        if self._turn_engine is None:
            return await self.run(_continue_turn, cached, inbound_text)

        async def once() -> Any:
            async with self._driver() as raw:
                return await raw.fetchrow(
                    _PG_CONTINUE_TURN,
                    cached.conversation_id,
                    inbound_text,
                    utcnow(),
                    cached.version,
                )

        row = await self._retrying(once)
        version, updated_at, state = row  # the insert's foreign key refused a deleted one
        if version == cached.version:
            return cached
        return replace(cached, state=state or None, version=version, updated_at=updated_at)

    async def reload(self, start: TurnStart) -> TurnStart:
        """The conversation as saved now (after a `ConcurrentUpdate`), without a new message."""
        self._forget(start.channel, start.external_id)
        return await self._in_turn(_load_conversation, start)

    async def finish_turn(
        self,
        start: TurnStart,
        state: dict[str, Any],
        revision: str | None,
        replies: Sequence[str],
    ) -> None:
        """Save the new state (if nobody else did meanwhile) and the bot's replies."""
        key = (start.channel, start.external_id)
        try:
            if self._turn_engine is None:
                saved = await self.run(_finish_turn, start, state, revision, list(replies))
            else:
                saved = await self._finish_turn_on_postgres(start, state, revision, replies)
        except ConcurrentUpdate:
            self._forget(*key)
            raise
        self._cache[key] = saved
        self._cache.move_to_end(key)
        if len(self._cache) > self.CACHE_SIZE:
            self._cache.popitem(last=False)

    async def _finish_turn_on_postgres(
        self,
        start: TurnStart,
        state: dict[str, Any],
        revision: str | None,
        replies: Sequence[str],
    ) -> TurnStart:
        """`_finish_turn` as one statement: one round trip, no BEGIN/COMMIT."""
        now = utcnow()

        async def once() -> Any:
            async with self._driver() as raw:
                return await raw.fetchval(
                    _PG_FINISH_TURN,
                    start.conversation_id,
                    start.version,
                    json.dumps(state),  # as SQLAlchemy's JSON type writes it
                    revision,
                    now,
                    list(replies),
                )

        saved = await self._retrying(once)
        if saved != 1:
            raise ConcurrentUpdate(f"conversation {start.conversation_id} changed meanwhile")
        return replace(start, state=state, version=start.version + 1, updated_at=now)

    def _forget(self, channel: str, external_id: str) -> None:
        self._cache.pop((channel, external_id), None)

    async def set_locale(self, channel: str, external_id: str, locale: str) -> None:
        await self.run(_set_locale, channel, external_id, locale)

    async def delete_user(self, channel: str, external_id: str) -> bool:
        """Delete the user with conversation and transcript; True when there was one."""
        self._forget(channel, external_id)
        return await self.run(_delete_user, channel, external_id)

    async def transcript(self, channel: str, external_id: str) -> list[StoredMessage]:
        return await self.run(_transcript, channel, external_id)

    async def conversation(self, channel: str, external_id: str) -> SavedConversation | None:
        """The user's conversation as saved in the database (None if there is none); not from
        the cache, since another instance may have answered the user meanwhile."""
        return await self.run(_conversation, channel, external_id)

    async def saved_version(self, channel: str, external_id: str) -> int:
        """The version of the user's conversation as last saved (0 when there is none).

        Read from the cache when this instance saved it, as after the turn it just finished.
        """
        cached = self._cache.get((channel, external_id))
        if cached is not None:
            return cached.version
        saved = await self.conversation(channel, external_id)
        return saved.version if saved else 0

    async def mark_blocked(self, channel: str, external_id: str) -> None:
        """The user blocked the bot: send them nothing until they write again."""
        # Forgotten, so the user's next message takes the path through `_user`, which clears it.
        self._forget(channel, external_id)
        await self.run(_mark_blocked, channel, external_id)

    async def is_blocked(self, channel: str, external_id: str) -> bool:
        return await self.run(_is_blocked, channel, external_id)

    async def stranded_users(self, channel: str, since: datetime) -> list[str]:
        """Users of `channel` with a message stored since `since` that no saved turn followed
        (every saved turn sets the conversation's `updated_at`); blocked users are left out.
        A full look at the recent transcript: meant for a start, not for every turn."""
        return await self.run(_stranded_users, channel, since)

    async def stranded(self, channel: str, external_id: str) -> Stranded | None:
        """The user's last message that no saved turn followed, with the conversation as
        saved (not from the cache); None when there is none. Inside the user's `turn`, so no
        turn of theirs is under way meanwhile."""
        self._forget(channel, external_id)
        return await self._in_turn(_stranded, channel, external_id)

    async def load_turn(self, channel: str, external_id: str) -> TurnStart | None:
        """The user's saved conversation for a turn the bot starts itself (no message from the
        user); None when there is none. Read from the database, not the cache."""
        self._forget(channel, external_id)
        return await self._in_turn(_load_turn, channel, external_id)


# --- the transactions -------------------------------------------------------------------


def _begin_turn(
    conn: Connection, channel: str, external_id: str, locale: str, inbound_text: str
) -> TurnStart:
    user_id, user_locale = _user(conn, channel, external_id, locale)
    row = conn.execute(
        select(
            Conversation.id, Conversation.state, Conversation.version, Conversation.updated_at
        ).where(Conversation.user_id == user_id)
    ).first()
    now = utcnow()
    if row is None:
        conversation_id = conn.execute(
            insert(Conversation)
            .values(user_id=user_id, state={}, version=0, created_at=now, updated_at=now)
            .returning(Conversation.id)
        ).scalar_one()
        state, version, updated_at = None, 0, None
    else:
        conversation_id, state, version, updated_at = row
        state = state or None
        updated_at = _utc(updated_at)
    _store_inbound(conn, conversation_id, inbound_text)
    return TurnStart(
        channel, external_id, user_id, conversation_id, user_locale, state, version, updated_at
    )


_TURN_LOCK = "SELECT pg_advisory_lock($1)"
_TURN_UNLOCK = "SELECT pg_advisory_unlock($1)"

# A returning user's turn on PostgreSQL: `_continue_turn` and `_finish_turn` as one statement
# each (a statement is its own transaction), prepared once per connection by asyncpg. Their
# SQLAlchemy twins below remain the reference (SQLite); tests/test_store.py runs both.
# The state comes back only when another instance saved a newer one.
_PG_CONTINUE_TURN = """
WITH inbound AS (
    INSERT INTO messages (conversation_id, direction, text, created_at)
    VALUES ($1, 'in', $2, $3)
)
SELECT version, updated_at, CASE WHEN version = $4 THEN NULL ELSE state END
FROM conversations WHERE id = $1
"""
# Replies are inserted in their order (ids from the sequence follow ORDER BY), and only when
# the version guard let the update through; the count says whether it did.
_PG_FINISH_TURN = """
WITH saved AS (
    UPDATE conversations
    SET state = $3::json, knowledge_revision = $4, version = $2 + 1, updated_at = $5
    WHERE id = $1 AND version = $2
    RETURNING id
), replies AS (
    INSERT INTO messages (conversation_id, direction, text, created_at)
    SELECT saved.id, 'out', reply.text, $5
    FROM saved, unnest($6::text[]) WITH ORDINALITY AS reply(text, position)
    ORDER BY reply.position
)
SELECT count(*) FROM saved
"""

# The two statements of every turn, built once: building them per call cost more than the
# database work itself.
_INSERT_MESSAGE = insert(Message)
_SAVE_STATE = (
    update(Conversation)
    .where(Conversation.id == bindparam("conversation"))
    .where(Conversation.version == bindparam("expected_version"))
    .values(
        state=bindparam("new_state", type_=Conversation.state.type),
        knowledge_revision=bindparam("revision"),
        version=bindparam("new_version"),
        updated_at=bindparam("now"),
    )
)


def _store_inbound(conn: Connection, conversation_id: int, text: str) -> None:
    conn.execute(
        _INSERT_MESSAGE,
        {
            "conversation_id": conversation_id,
            "direction": "in",
            "text": text,
            "created_at": utcnow(),
        },
    )


# Built once, like the statements above: building it per turn cost more than running it.
_SAVED_VERSION = select(Conversation.version).where(Conversation.id == bindparam("conversation"))


def _continue_turn(conn: Connection, cached: TurnStart, inbound_text: str) -> TurnStart:
    """Store the message; the cached state if it is still the saved one, else the saved one
    (another instance took a turn meanwhile): deciding on a stale state would be wasted."""
    _store_inbound(conn, cached.conversation_id, inbound_text)
    version = conn.execute(
        _SAVED_VERSION, {"conversation": cached.conversation_id}
    ).scalar_one_or_none()
    if version is None:  # deleted meanwhile; SQLite may not have refused the insert
        raise IntegrityError("conversation deleted", None, Exception("deleted"))
    return cached if version == cached.version else _load_conversation(conn, cached)


def _load_conversation(conn: Connection, start: TurnStart) -> TurnStart:
    state, version, updated_at = conn.execute(
        select(Conversation.state, Conversation.version, Conversation.updated_at).where(
            Conversation.id == start.conversation_id
        )
    ).one()
    return replace(start, state=state or None, version=version, updated_at=_utc(updated_at))


def _user(conn: Connection, channel: str, external_id: str, locale: str) -> tuple[int, str]:
    query = select(User.id, User.locale, User.blocked_at).where(
        User.channel == channel, User.external_id == external_id
    )
    row = conn.execute(query).first()
    if row is not None:
        if row[2] is not None:  # a user who had blocked the bot writes again
            conn.execute(update(User).where(User.id == row[0]).values(blocked_at=None))
        return row[0], row[1]
    now = utcnow()
    try:
        with conn.begin_nested():
            user_id: int = conn.execute(
                insert(User)
                .values(
                    channel=channel,
                    external_id=external_id,
                    locale=locale,
                    created_at=now,
                )
                .returning(User.id)
            ).scalar_one()
    except IntegrityError:  # another process created the user a moment ago
        row = conn.execute(query).one()
        return row[0], row[1]
    return user_id, locale


def _finish_turn(
    conn: Connection,
    start: TurnStart,
    state: dict[str, Any],
    revision: str | None,
    replies: list[str],
) -> TurnStart:
    now = utcnow()
    result = conn.execute(
        _SAVE_STATE,
        {
            "conversation": start.conversation_id,
            "expected_version": start.version,
            "new_state": state,
            "revision": revision,
            "new_version": start.version + 1,
            "now": now,
        },
    )
    if result.rowcount != 1:
        raise ConcurrentUpdate(f"conversation {start.conversation_id} changed meanwhile")
    if replies:
        conn.execute(
            _INSERT_MESSAGE,
            [
                {
                    "conversation_id": start.conversation_id,
                    "direction": "out",
                    "text": text,
                    "created_at": now,
                }
                for text in replies
            ],
        )
    return replace(start, state=state, version=start.version + 1, updated_at=now)


def _set_locale(conn: Connection, channel: str, external_id: str, locale: str) -> None:
    conn.execute(
        update(User)
        .where(User.channel == channel, User.external_id == external_id)
        .values(locale=locale)
    )


def _delete_user(conn: Connection, channel: str, external_id: str) -> bool:
    user_id = conn.execute(
        select(User.id).where(User.channel == channel, User.external_id == external_id)
    ).scalar_one_or_none()
    if user_id is None:
        return False
    # Explicit deletes, so this does not depend on the database enforcing cascades.
    conversation_ids = select(Conversation.id).where(Conversation.user_id == user_id)
    conn.execute(delete(Message).where(Message.conversation_id.in_(conversation_ids)))
    conn.execute(delete(Conversation).where(Conversation.user_id == user_id))
    conn.execute(delete(User).where(User.id == user_id))
    return True


def _transcript(conn: Connection, channel: str, external_id: str) -> list[StoredMessage]:
    rows = conn.execute(
        select(Message.direction, Message.text, Message.created_at)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .join(User, User.id == Conversation.user_id)
        .where(User.channel == channel, User.external_id == external_id)
        .order_by(Message.id)
    ).all()
    return [StoredMessage(direction, text, _utc(created)) for direction, text, created in rows]


def _conversation(conn: Connection, channel: str, external_id: str) -> SavedConversation | None:
    row = conn.execute(
        select(Conversation.state, Conversation.version)
        .join(User, User.id == Conversation.user_id)
        .where(User.channel == channel, User.external_id == external_id)
    ).first()
    return SavedConversation(row[0] or None, row[1]) if row else None


def _mark_blocked(conn: Connection, channel: str, external_id: str) -> None:
    conn.execute(
        update(User)
        .where(User.channel == channel, User.external_id == external_id)
        .values(blocked_at=utcnow())
    )


def _is_blocked(conn: Connection, channel: str, external_id: str) -> bool:
    blocked_at = conn.execute(
        select(User.blocked_at).where(User.channel == channel, User.external_id == external_id)
    ).scalar_one_or_none()
    return blocked_at is not None


def _load_turn(conn: Connection, channel: str, external_id: str) -> TurnStart | None:
    row = conn.execute(
        select(
            User.id,
            User.locale,
            Conversation.id,
            Conversation.state,
            Conversation.version,
            Conversation.updated_at,
        )
        .join(Conversation, Conversation.user_id == User.id)
        .where(User.channel == channel, User.external_id == external_id)
    ).first()
    if row is None:
        return None
    user_id, locale, conversation_id, state, version, updated_at = row
    updated = _utc(updated_at)
    return TurnStart(
        channel, external_id, user_id, conversation_id, locale, state or None, version, updated
    )


def _unanswered() -> ColumnElement[bool]:
    """A message from the user stored after the last save of their conversation."""
    return and_(Message.direction == "in", Message.created_at > Conversation.updated_at)


def _stranded_users(conn: Connection, channel: str, since: datetime) -> list[str]:
    # Only "out" messages come with a save (same time), so a conversation with a message after
    # its last save has one as its newest message: one index lookup per conversation (the
    # index on conversation and id) instead of a pass over the whole recent transcript.
    other = aliased(Message)
    newest = (
        select(func.max(other.id))
        .where(other.conversation_id == Conversation.id)
        .correlate(Conversation)
        .scalar_subquery()
    )
    rows = conn.execute(
        select(User.external_id)
        .join(Conversation, Conversation.user_id == User.id)
        .join(Message, Message.id == newest)
        .where(
            User.channel == channel,
            User.blocked_at.is_(None),
            Message.created_at >= since,
            _unanswered(),
        )
    ).scalars()
    return list(rows)


def _stranded(conn: Connection, channel: str, external_id: str) -> Stranded | None:
    start = _load_turn(conn, channel, external_id)
    if start is None:
        return None
    row = conn.execute(
        select(Message.text, Message.created_at)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(Conversation.id == start.conversation_id, _unanswered())
        .order_by(Message.id.desc())
        .limit(1)
    ).first()
    return Stranded(start, row[0], _utc(row[1])) if row is not None else None
