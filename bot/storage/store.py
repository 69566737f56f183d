"""The store: users, conversation state and transcript, through SQLAlchemy 2.

A turn is two short transactions: `begin_turn` records the user's message before anything can
go wrong (nothing the user wrote is lost), `finish_turn` saves the new state and the replies.
No connection is held for them while the bot thinks (NLU calls may take a while).

Several instances on one PostgreSQL: `turn` holds a per-user advisory lock for the whole turn,
on a connection of a small pool of its own, so one user's turns never interleave (the
transcript reads in, out, in, out) whichever instance takes them.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, closing, suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    create_engine,
    delete,
    event,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bot.storage.migrate import upgrade, user_lock_key
from bot.storage.tables import Conversation, Message, User, utcnow

T = TypeVar("T")
log = logging.getLogger(__name__)


class ConcurrentUpdate(Exception):
    """Another writer saved this conversation first; the turn must be retried."""


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


def _utc(value: datetime) -> datetime:
    """SQLite returns naive datetimes for timezone-aware columns; they hold UTC (see utcnow)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers and the writer work at once; NORMAL sync is safe with WAL.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
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
    # Connections for the turn locks: turns of this many users at once per instance, the rest
    # wait. A pool apart from the transactions', so a turn holding its lock always gets one.
    LOCK_POOL_SIZE = 10

    def __init__(self, url: str, *, turn_locks: bool = True) -> None:
        self._cache: OrderedDict[tuple[str, str], TurnStart] = OrderedDict()
        parsed = make_url(url)
        self._async_engine: AsyncEngine | None = None
        self._lock_engine: AsyncEngine | None = None
        self._turns_in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._sync_engine: Engine | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._sqlite_connection: Connection | None = None
        self._checkpointer: asyncio.Task[None] | None = None
        if parsed.get_backend_name() == "sqlite":
            engine = create_engine(parsed.set(drivername="sqlite"), pool_size=1, max_overflow=0)
            event.listen(engine, "connect", _sqlite_pragmas)
            self._sync_engine = engine
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lotse-sqlite")
            self._sqlite_file = parsed.database if parsed.database != ":memory:" else None
        else:
            self._async_engine = create_async_engine(url, pool_pre_ping=True)
            if turn_locks:
                # No pre-ping: it would add a round trip to every turn. A connection the
                # server dropped fails one turn; SQLAlchemy then renews the whole pool.
                # The lock's transaction ends before the connection goes back: no reset.
                self._lock_engine = create_async_engine(
                    url, pool_size=self.LOCK_POOL_SIZE, max_overflow=0, pool_reset_on_return=None
                )
            self._sqlite_file = None

    @classmethod
    async def open(cls, url: str, *, migrate: bool = True, turn_locks: bool = True) -> Store:
        """Connect (creating a SQLite file's directory) and bring the schema up to date.

        `turn_locks=False` leaves one user's turns to the version check alone (benchmarks).
        """
        store = cls(url, turn_locks=turn_locks)
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
        """Run `work(connection, *args)` in one transaction."""
        if self._async_engine is not None:
            async with self._async_engine.begin() as conn:
                return await conn.run_sync(work, *args)
        return await self._in_thread(self._transaction, work, *args)

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

        A transaction-level advisory lock, so whatever ends the turn (an error, cancellation,
        a lost connection) ends the transaction and frees the lock with it.
        """
        self._turns_in_flight += 1
        self._idle.clear()
        try:
            if self._lock_engine is None:
                yield
            else:
                # On asyncpg directly: through SQLAlchemy's adaption layer the lock cost
                # about twice the CPU time (measured with benchmarks/turns.py).
                async with self._lock_engine.connect() as conn:
                    raw = (await conn.get_raw_connection()).driver_connection
                    assert raw is not None
                    async with raw.transaction():
                        await raw.execute(_TURN_LOCK, user_lock_key(channel, external_id))
                        yield
        finally:
            self._turns_in_flight -= 1
            if self._turns_in_flight == 0:
                self._idle.set()

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
        if self._lock_engine is not None:
            await self._lock_engine.dispose()
        if self._thread is not None:
            await self._in_thread(self._close_sqlite)
            if self._sqlite_file:
                await asyncio.to_thread(_checkpoint, self._sqlite_file, "TRUNCATE")
            self._thread.shutdown(wait=True)
            self._thread = None

    async def begin_turn(
        self, channel: str, external_id: str, locale: str, inbound_text: str
    ) -> TurnStart:
        """Find or create user and conversation, and store the user's (redacted) message."""
        cached = self._cache.get((channel, external_id))
        if cached is not None:
            try:
                return await self.run(_continue_turn, cached, inbound_text)
            except IntegrityError:  # deleted meanwhile (by another instance)
                self._forget(channel, external_id)
        return await self.run(_begin_turn, channel, external_id, locale, inbound_text)

    async def reload(self, start: TurnStart) -> TurnStart:
        """The conversation as saved now (after a `ConcurrentUpdate`), without a new message."""
        self._forget(start.channel, start.external_id)
        return await self.run(_load_conversation, start)

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
            saved = await self.run(_finish_turn, start, state, revision, list(replies))
        except ConcurrentUpdate:
            self._forget(*key)
            raise
        self._cache[key] = saved
        self._cache.move_to_end(key)
        if len(self._cache) > self.CACHE_SIZE:
            self._cache.popitem(last=False)

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


_TURN_LOCK = "SELECT pg_advisory_xact_lock($1)"

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


def _continue_turn(conn: Connection, cached: TurnStart, inbound_text: str) -> TurnStart:
    """Store the message; the cached state if it is still the saved one, else the saved one
    (another instance took a turn meanwhile): deciding on a stale state would be wasted."""
    _store_inbound(conn, cached.conversation_id, inbound_text)
    version = conn.execute(
        select(Conversation.version).where(Conversation.id == cached.conversation_id)
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
