"""The store: users, conversation state and transcript, through SQLAlchemy 2 (async).

A turn is two short transactions: `begin_turn` records the user's message before anything can
go wrong (nothing the user wrote is lost), `finish_turn` saves the new state and the replies.
No connection is held while the bot thinks (NLU calls may take a while).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, event, insert, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from bot.storage.migrate import upgrade
from bot.storage.tables import Conversation, Message, User, utcnow


class ConcurrentUpdate(Exception):
    """Another writer saved this conversation first; the turn must be retried."""


@dataclass(frozen=True)
class TurnStart:
    user_id: int
    conversation_id: int
    locale: str
    state: dict[str, Any] | None  # None for a conversation that has just begun
    version: int
    updated_at: datetime | None  # when the conversation was last saved, None when new


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
    cursor.close()


def _make_parent_directory(database: str) -> None:
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


class Store:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @classmethod
    async def open(cls, url: str, *, migrate: bool = True) -> Store:
        """Connect (creating a SQLite file's directory) and bring the schema up to date."""
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                await asyncio.to_thread(_make_parent_directory, parsed.database)
            # One connection: SQLite has one writer anyway, and a single connection avoids
            # "database is locked" when a read transaction is upgraded to a write.
            engine = create_async_engine(url, pool_size=1, max_overflow=0)
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            engine = create_async_engine(url, pool_pre_ping=True)
        if migrate:
            await upgrade(engine)
        return cls(engine)

    async def close(self) -> None:
        await self.engine.dispose()

    async def begin_turn(
        self, channel: str, external_id: str, locale: str, inbound_text: str
    ) -> TurnStart:
        """Find or create user and conversation, and store the user's (redacted) message."""
        async with self.engine.begin() as conn:
            user_id, user_locale = await self._user(conn, channel, external_id, locale)
            row = (
                await conn.execute(
                    select(
                        Conversation.id,
                        Conversation.state,
                        Conversation.version,
                        Conversation.updated_at,
                    ).where(Conversation.user_id == user_id)
                )
            ).first()
            now = utcnow()
            if row is None:
                conversation_id = (
                    await conn.execute(
                        insert(Conversation)
                        .values(
                            user_id=user_id, state={}, version=0, created_at=now, updated_at=now
                        )
                        .returning(Conversation.id)
                    )
                ).scalar_one()
                state, version, updated_at = None, 0, None
            else:
                conversation_id, state, version, updated_at = row
                state = state or None
                updated_at = _utc(updated_at)
            await conn.execute(
                insert(Message).values(
                    conversation_id=conversation_id,
                    direction="in",
                    text=inbound_text,
                    created_at=now,
                )
            )
            await conn.execute(update(User).where(User.id == user_id).values(last_seen_at=now))
        return TurnStart(user_id, conversation_id, user_locale, state, version, updated_at)

    async def _user(
        self, conn: AsyncConnection, channel: str, external_id: str, locale: str
    ) -> tuple[int, str]:
        query = select(User.id, User.locale).where(
            User.channel == channel, User.external_id == external_id
        )
        row = (await conn.execute(query)).first()
        if row is not None:
            return row[0], row[1]
        now = utcnow()
        try:
            async with conn.begin_nested():
                user_id = (
                    await conn.execute(
                        insert(User)
                        .values(
                            channel=channel,
                            external_id=external_id,
                            locale=locale,
                            created_at=now,
                            last_seen_at=now,
                        )
                        .returning(User.id)
                    )
                ).scalar_one()
        except IntegrityError:  # another process created the user a moment ago
            row = (await conn.execute(query)).one()
            return row[0], row[1]
        return user_id, locale

    async def finish_turn(
        self,
        start: TurnStart,
        state: dict[str, Any],
        revision: str | None,
        replies: Sequence[str],
    ) -> None:
        """Save the new state (if nobody else did meanwhile) and the bot's replies."""
        now = utcnow()
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(Conversation)
                .where(Conversation.id == start.conversation_id)
                .where(Conversation.version == start.version)
                .values(
                    state=state,
                    knowledge_revision=revision,
                    version=start.version + 1,
                    updated_at=now,
                )
            )
            if result.rowcount != 1:
                raise ConcurrentUpdate(f"conversation {start.conversation_id} changed meanwhile")
            if replies:
                await conn.execute(
                    insert(Message),
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

    async def set_locale(self, channel: str, external_id: str, locale: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(User)
                .where(User.channel == channel, User.external_id == external_id)
                .values(locale=locale)
            )

    async def delete_user(self, channel: str, external_id: str) -> bool:
        """Delete the user with conversation and transcript; True when there was one."""
        async with self.engine.begin() as conn:
            user_id = (
                await conn.execute(
                    select(User.id).where(User.channel == channel, User.external_id == external_id)
                )
            ).scalar_one_or_none()
            if user_id is None:
                return False
            # Explicit deletes, so this does not depend on the database enforcing cascades.
            conversation_ids = select(Conversation.id).where(Conversation.user_id == user_id)
            await conn.execute(delete(Message).where(Message.conversation_id.in_(conversation_ids)))
            await conn.execute(delete(Conversation).where(Conversation.user_id == user_id))
            await conn.execute(delete(User).where(User.id == user_id))
        return True

    async def transcript(self, channel: str, external_id: str) -> list[StoredMessage]:
        query = (
            select(Message.direction, Message.text, Message.created_at)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .join(User, User.id == Conversation.user_id)
            .where(User.channel == channel, User.external_id == external_id)
            .order_by(Message.id)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [StoredMessage(direction, text, _utc(created)) for direction, text, created in rows]
