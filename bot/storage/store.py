"""The store: users, conversation state and transcript, the API the rest of Lotse uses.

A turn is two short transactions: `begin_turn` records the user's message before anything can
go wrong (nothing the user wrote is lost), `finish_turn` saves the new state and the replies.
No transaction stays open while the bot thinks (NLU calls may take a while).

`Store.open` chooses the back end by the URL: `SQLiteBackend` (bot/storage/sqlite.py) or
`PostgresBackend` (bot/storage/postgres.py, with the per-user turn lock for several
instances). Both run the same transaction functions (bot/storage/transactions.py); the store
adds the write-through turn cache (bot/storage/cache.py) and counts the turns under way.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from bot.storage import transactions
from bot.storage.backend import (
    WRITE_DEADLINE,
    Backend,
    MessageNotStored,
    StoreBusy,
    transient,
)
from bot.storage.cache import TurnCache
from bot.storage.migrate import upgrade
from bot.storage.postgres import PostgresBackend
from bot.storage.sqlite import SQLiteBackend
from bot.storage.transactions import (
    ConcurrentUpdate,
    SavedConversation,
    StoredMessage,
    Stranded,
    TurnStart,
)

__all__ = [
    "WRITE_DEADLINE",
    "ConcurrentUpdate",
    "MessageNotStored",
    "SavedConversation",
    "Store",
    "StoreBusy",
    "StoredMessage",
    "Stranded",
    "TurnStart",
    "open_backend",
    "transient",
]

T = TypeVar("T")


async def open_backend(
    url: str,
    *,
    migrate: bool = True,
    turn_locks: bool = True,
    write_deadline: float = WRITE_DEADLINE,
) -> Backend:
    """The back end for `url`'s database, connected and (with `migrate`) up to date."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return await SQLiteBackend.open(parsed, migrate=migrate, write_deadline=write_deadline)
    return await PostgresBackend.open(
        parsed, migrate=migrate, turn_locks=turn_locks, write_deadline=write_deadline
    )


class Store:
    """Users, conversations and transcripts over one back end, with a write-through cache."""

    def __init__(self, backend: Backend, cache: TurnCache | None = None) -> None:
        self.backend = backend
        self._cache = cache if cache is not None else TurnCache()
        self._turns_in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

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
        backend = await open_backend(
            url, migrate=migrate, turn_locks=turn_locks, write_deadline=write_deadline
        )
        return cls(backend)

    @property
    def dialect(self) -> str:
        return self.backend.dialect

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        """Run `work(connection, *args)` in one transaction (again while the database is
        locked, then `StoreBusy`)."""
        return await self.backend.run(work, *args)

    async def upgrade(self) -> None:
        """Apply all Alembic migrations."""
        await self.run(upgrade)

    @asynccontextmanager
    async def turn(self, channel: str, external_id: str) -> AsyncIterator[None]:
        """One user's turn: on PostgreSQL no other instance runs one for them meanwhile, and
        the store's calls inside it run on the turn's own connection (see PostgresBackend)."""
        self._turns_in_flight += 1
        self._idle.clear()
        try:
            async with self.backend.turn(channel, external_id):
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
        await self.backend.close()

    async def begin_turn(
        self, channel: str, external_id: str, locale: str, inbound_text: str
    ) -> TurnStart:
        """Find or create user and conversation, and store the user's (redacted) message;
        `MessageNotStored` when the database stayed locked."""
        try:
            cached = self._cache.get(channel, external_id)
            if cached is not None:
                try:
                    return await self.backend.continue_turn(cached, inbound_text)
                except IntegrityError:  # deleted meanwhile
                    self._cache.forget(channel, external_id)
            return await self.backend.in_turn(
                transactions.begin_turn, channel, external_id, locale, inbound_text
            )
        except StoreBusy as busy:
            raise MessageNotStored(str(busy)) from busy

    async def reload(self, start: TurnStart) -> TurnStart:
        """The conversation as saved now (after a `ConcurrentUpdate`), without a new message."""
        self._cache.forget(start.channel, start.external_id)
        return await self.backend.in_turn(transactions.load_conversation, start)

    async def finish_turn(
        self,
        start: TurnStart,
        state: dict[str, Any],
        revision: str | None,
        replies: Sequence[str],
    ) -> None:
        """Save the new state (if nobody else did meanwhile) and the bot's replies."""
        try:
            saved = await self.backend.finish_turn(start, state, revision, replies)
        except ConcurrentUpdate:
            self._cache.forget(start.channel, start.external_id)
            raise
        self._cache.saved(saved)

    async def set_locale(self, channel: str, external_id: str, locale: str) -> None:
        await self.run(transactions.set_locale, channel, external_id, locale)

    async def delete_user(self, channel: str, external_id: str) -> bool:
        """Delete the user with conversation and transcript; True when there was one."""
        self._cache.forget(channel, external_id)
        return await self.run(transactions.delete_user, channel, external_id)

    async def transcript(self, channel: str, external_id: str) -> list[StoredMessage]:
        return await self.run(transactions.transcript, channel, external_id)

    async def conversation(self, channel: str, external_id: str) -> SavedConversation | None:
        """The user's conversation as saved in the database (None if there is none); not from
        the cache, since another instance may have answered the user meanwhile."""
        return await self.run(transactions.conversation, channel, external_id)

    async def saved_version(self, channel: str, external_id: str) -> int:
        """The version of the user's conversation as last saved (0 when there is none).

        Read from the cache when this instance saved it, as after the turn it just finished.
        """
        cached = self._cache.get(channel, external_id)
        if cached is not None:
            return cached.version
        saved = await self.conversation(channel, external_id)
        return saved.version if saved else 0

    async def mark_blocked(self, channel: str, external_id: str) -> None:
        """The user blocked the bot: send them nothing until they write again."""
        # Forgotten, so the user's next message takes the path through `_user`, which clears it.
        self._cache.forget(channel, external_id)
        await self.run(transactions.mark_blocked, channel, external_id)

    async def is_blocked(self, channel: str, external_id: str) -> bool:
        return await self.run(transactions.is_blocked, channel, external_id)

    async def stranded_users(self, channel: str, since: datetime) -> list[str]:
        """Users of `channel` with a message stored since `since` that no saved turn followed
        (every saved turn sets the conversation's `updated_at`); blocked users are left out.
        A full look at the recent transcript: meant for a start, not for every turn."""
        return await self.run(transactions.stranded_users, channel, since)

    async def stranded(self, channel: str, external_id: str) -> Stranded | None:
        """The user's last message that no saved turn followed, with the conversation as
        saved (not from the cache); None when there is none. Inside the user's `turn`, so no
        turn of theirs is under way meanwhile."""
        self._cache.forget(channel, external_id)
        return await self.backend.in_turn(transactions.stranded, channel, external_id)

    async def load_turn(self, channel: str, external_id: str) -> TurnStart | None:
        """The user's saved conversation for a turn the bot starts itself (no message from the
        user); None when there is none. Read from the database, not the cache."""
        self._cache.forget(channel, external_id)
        return await self.backend.in_turn(transactions.load_turn, channel, external_id)
