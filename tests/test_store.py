"""The store keeps users, conversation state and the transcript, the same on SQLite and PostgreSQL.

Every test runs on both: a SQLite file in a temp dir and a fresh database on a throwaway
PostgreSQL cluster (`tests/servers/postgres.py`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import ColumnElement, Connection, func, select, true
from sqlalchemy.orm import DeclarativeBase

from bot.clock import utcnow
from bot.storage.migrate import alembic_config
from bot.storage.sqlite import SQLiteBackend
from bot.storage.store import ConcurrentUpdate, SavedConversation, Store
from bot.storage.tables import Base, Conversation, Message, User
from tests.support import wait_until


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'lotse.db'}"
    # Asked for only here, so the SQLite half runs even where PostgreSQL is missing.
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    store = await Store.open(db_url)
    yield store
    await store.close()


async def count(
    store: Store, table: type[DeclarativeBase], where: ColumnElement[bool] | None = None
) -> int:
    """Rows in a table, read with plain SQL rather than through the store's own methods."""
    query = select(func.count()).select_from(table).where(true() if where is None else where)
    rows: int = await store.run(lambda conn: conn.execute(query).scalar_one())
    return rows


def texts(messages: list[Any]) -> list[tuple[str, str]]:
    return [(message.direction, message.text) for message in messages]


async def test_first_turn_creates_user_and_conversation_and_next_turn_resumes(
    store: Store,
) -> None:
    start = await store.begin_turn("telegram", "42", "de", "Hallo")
    assert start.state is None
    assert start.version == 0
    assert start.updated_at is None
    assert start.locale == "de"
    assert await count(store, User) == 1
    assert await count(store, Conversation) == 1
    assert texts(await store.transcript("telegram", "42")) == [("in", "Hallo")]

    state = {"guide": "thunderbird", "step": 2, "answers": ["imap", "ja"]}
    await store.finish_turn(start, state, "rev-1", ["Willkommen!", "Welches Programm?"])

    # The user's stored locale wins over the one the next message arrives with.
    again = await store.begin_turn("telegram", "42", "en", "Thunderbird")
    assert again.state == state
    assert again.version == 1
    assert again.locale == "de"
    assert (again.user_id, again.conversation_id) == (start.user_id, start.conversation_id)
    assert again.updated_at is not None
    assert await count(store, User) == 1
    assert await count(store, Conversation) == 1

    transcript = await store.transcript("telegram", "42")
    assert texts(transcript) == [
        ("in", "Hallo"),
        ("out", "Willkommen!"),
        ("out", "Welches Programm?"),
        ("in", "Thunderbird"),
    ]
    stamps = [message.created_at for message in transcript]
    assert stamps == sorted(stamps)


async def test_timestamps_are_utc_aware_on_both_databases(store: Store) -> None:
    start = await store.begin_turn("telegram", "42", "de", "Hallo")
    await store.finish_turn(start, {"step": 1}, None, ["Antwort"])
    again = await store.begin_turn("telegram", "42", "de", "Weiter")

    assert again.updated_at is not None
    assert again.updated_at.utcoffset() == timedelta(0)
    for message in await store.transcript("telegram", "42"):
        assert message.created_at.utcoffset() == timedelta(0)


async def test_state_survives_a_restart(store: Store, db_url: str) -> None:
    start = await store.begin_turn("matrix", "@anna:example.org", "de", "Hallo")
    await store.finish_turn(start, {"guide": "outlook", "step": 3}, "rev-1", ["Schritt 3"])
    await store.close()

    reopened = await Store.open(db_url)
    try:
        resumed = await reopened.begin_turn("matrix", "@anna:example.org", "de", "Weiter")
        assert resumed.state == {"guide": "outlook", "step": 3}
        assert resumed.version == 1
        assert texts(await reopened.transcript("matrix", "@anna:example.org")) == [
            ("in", "Hallo"),
            ("out", "Schritt 3"),
            ("in", "Weiter"),
        ]
    finally:
        await reopened.close()


async def test_finish_turn_with_a_stale_version_raises_and_stores_nothing(store: Store) -> None:
    first = await store.begin_turn("telegram", "42", "de", "eins")
    second = await store.begin_turn("telegram", "42", "de", "zwei")  # read the same version
    assert first.version == second.version == 0

    await store.finish_turn(first, {"step": 1}, None, ["Antwort eins"])
    with pytest.raises(ConcurrentUpdate):
        await store.finish_turn(second, {"step": 99}, None, ["Antwort zwei"])
    with pytest.raises(ConcurrentUpdate):  # the same turn cannot be saved twice either
        await store.finish_turn(first, {"step": 2}, None, ["noch einmal"])

    after = await store.begin_turn("telegram", "42", "de", "drei")
    assert after.state == {"step": 1}
    assert after.version == 1
    assert texts(await store.transcript("telegram", "42")) == [
        ("in", "eins"),
        ("in", "zwei"),
        ("out", "Antwort eins"),
        ("in", "drei"),
    ]


async def test_delete_user_removes_user_conversation_and_every_message(store: Store) -> None:
    for user in ("gone", "stays"):
        start = await store.begin_turn("telegram", user, "de", f"Hallo von {user}")
        await store.finish_turn(start, {"step": 1}, None, ["Antwort 1", "Antwort 2"])
        await store.begin_turn("telegram", user, "de", "Noch eine Frage")
    gone = await store.begin_turn("telegram", "gone", "de", "Bitte alles löschen")

    assert await store.delete_user("telegram", "gone") is True

    assert await count(store, User, User.id == gone.user_id) == 0
    assert await count(store, Conversation, Conversation.id == gone.conversation_id) == 0
    assert await count(store, Message, Message.conversation_id == gone.conversation_id) == 0
    assert await store.transcript("telegram", "gone") == []
    # The other user is untouched.
    assert await count(store, User) == 1
    assert await count(store, Conversation) == 1
    assert await count(store, Message) == 4
    assert len(await store.transcript("telegram", "stays")) == 4

    assert await store.delete_user("telegram", "gone") is False
    assert await store.delete_user("telegram", "never-seen") is False
    # Deleted means forgotten: the same id starts over as a new user.
    fresh = await store.begin_turn("telegram", "gone", "de", "Hallo?")
    assert fresh.state is None
    assert fresh.user_id != gone.user_id


async def test_users_are_independent_and_channels_separate_them(store: Store) -> None:
    users = [("telegram", "7"), ("telegram", "8"), ("matrix", "7")]
    starts = {user: await store.begin_turn(*user, "de", f"Hallo {user}") for user in users}
    assert len({start.user_id for start in starts.values()}) == 3
    assert len({start.conversation_id for start in starts.values()}) == 3

    for number, user in enumerate(users):
        await store.finish_turn(starts[user], {"step": number}, None, [f"Antwort {number}"])

    for number, user in enumerate(users):
        again = await store.begin_turn(*user, "de", "Weiter")
        assert again.state == {"step": number}
        assert texts(await store.transcript(*user)) == [
            ("in", f"Hallo {user}"),
            ("out", f"Antwort {number}"),
            ("in", "Weiter"),
        ]


def _schema_differences(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    differences: list[Any] = compare_metadata(context, Base.metadata)
    return differences


def _current_heads(conn: Connection) -> tuple[str, ...]:
    return MigrationContext.configure(conn).get_current_heads()


async def test_migrated_schema_matches_the_tables(store: Store) -> None:
    assert await store.run(_schema_differences) == []


async def test_opening_twice_is_harmless(store: Store, db_url: str) -> None:
    start = await store.begin_turn("telegram", "42", "de", "Hallo")
    await store.finish_turn(start, {"step": 1}, None, ["Antwort"])

    second = await Store.open(db_url)  # runs the upgrade again, while the first is open
    try:
        assert await second.run(_schema_differences) == []
        heads = await second.run(_current_heads)
        assert set(heads) == set(ScriptDirectory.from_config(alembic_config()).get_heads())
        resumed = await second.begin_turn("telegram", "42", "de", "Weiter")
        assert resumed.state == {"step": 1}
    finally:
        await second.close()


async def test_long_unicode_text_round_trips_unchanged(store: Store) -> None:
    pattern = "Grüße 👋🏽 aus Köln – ßäöü € 中文 \U0001f510\x00 "
    text = (pattern * (10_000 // len(pattern) + 1))[:10_000]
    assert len(text) == 10_000 and "\x00" in text
    if store.dialect == "postgresql":
        # PostgreSQL text cannot hold NUL; the service's redaction replaces it before storing.
        text = text.replace("\x00", "\ufffd")

    start = await store.begin_turn("telegram", "42", "de", text)
    await store.finish_turn(start, {"last": text.replace("\x00", "\ufffd")}, None, [text])
    again = await store.begin_turn("telegram", "42", "de", "ok")

    assert again.state == {"last": text.replace("\x00", "\ufffd")}
    assert texts(await store.transcript("telegram", "42")) == [
        ("in", text),
        ("out", text),
        ("in", "ok"),
    ]


async def test_sqlite_checkpoints_in_the_background_and_leaves_no_wal_behind(
    tmp_path: Path,
) -> None:
    database = tmp_path / "wal.sqlite3"
    store = await Store.open(f"sqlite+aiosqlite:///{database}")
    store_wal = tmp_path / "wal.sqlite3-wal"
    for step in range(50):
        start = await store.begin_turn("console", "wal", "de", f"Nachricht {step}")
        await store.finish_turn(start, {"step": step}, None, ["Antwort"])
    size_before = database.stat().st_size
    # The WAL is copied into the database file in the background (nothing to wait on but that).
    await wait_until(
        lambda: database.stat().st_size > size_before,
        "a checkpoint",
        within=SQLiteBackend.CHECKPOINT_INTERVAL * 1.5,
    )
    await store.close()
    assert not store_wal.exists() or store_wal.stat().st_size == 0


async def test_a_user_who_blocked_the_bot_stays_marked_until_they_write_again(
    store: Store,
) -> None:
    start = await store.begin_turn("telegram", "42", "de", "Hallo")
    await store.finish_turn(start, {"step": 1}, None, ["Antwort"])
    assert await store.is_blocked("telegram", "42") is False

    await store.mark_blocked("telegram", "42")
    assert await store.is_blocked("telegram", "42") is True
    assert await store.is_blocked("matrix", "42") is False  # another channel, another user
    assert await count(store, User, User.blocked_at.is_not(None)) == 1

    again = await store.begin_turn("telegram", "42", "de", "Ich bin wieder da")
    assert await store.is_blocked("telegram", "42") is False
    assert again.state == {"step": 1}  # marking forgot nothing but the cache
    await store.mark_blocked("telegram", "never-seen")  # harmless
    assert await store.is_blocked("telegram", "never-seen") is False


async def test_the_saved_conversation_is_read_from_the_database(store: Store, db_url: str) -> None:
    assert await store.conversation("telegram", "42") is None
    assert await store.saved_version("telegram", "42") == 0
    start = await store.begin_turn("telegram", "42", "de", "Hallo")
    assert await store.conversation("telegram", "42") == SavedConversation(None, 0)
    await store.finish_turn(start, {"step": 1}, None, ["Schritt 1"])
    assert await store.saved_version("telegram", "42") == 1

    other = await Store.open(db_url)  # a second bot instance answers the user
    try:
        turn = await other.begin_turn("telegram", "42", "de", "Weiter")
        await other.finish_turn(turn, {"step": 2}, None, ["Schritt 2"])
    finally:
        await other.close()
    assert await store.conversation("telegram", "42") == SavedConversation({"step": 2}, 2)


async def test_a_cached_conversation_another_instance_moved_on_continues_from_the_saved_state(
    store: Store, db_url: str
) -> None:
    start = await store.begin_turn("telegram", "42", "de", "Hallo")
    await store.finish_turn(start, {"step": 1}, "rev-1", ["Schritt 1"])  # now cached here

    other = await Store.open(db_url)  # a second instance answers the user's next message
    try:
        turn = await other.begin_turn("telegram", "42", "de", "Weiter")
        saved_there = utcnow()
        await other.finish_turn(turn, {"step": 2}, "rev-2", ["Schritt 2", "Noch Fragen?"])
    finally:
        await other.close()

    again = await store.begin_turn("telegram", "42", "de", "Weiter")
    assert (again.state, again.version) == ({"step": 2}, 2)
    assert again.updated_at is not None and again.updated_at >= saved_there
    await store.finish_turn(again, {"step": 3}, "rev-2", ["Schritt 3"])
    assert await store.conversation("telegram", "42") == SavedConversation({"step": 3}, 3)
    assert await count(store, Conversation, Conversation.knowledge_revision == "rev-2") == 1
    assert texts(await store.transcript("telegram", "42")) == [
        ("in", "Hallo"),
        ("out", "Schritt 1"),
        ("in", "Weiter"),
        ("out", "Schritt 2"),
        ("out", "Noch Fragen?"),
        ("in", "Weiter"),
        ("out", "Schritt 3"),
    ]


async def test_a_cached_user_deleted_by_another_instance_starts_over(
    store: Store, db_url: str
) -> None:
    start = await store.begin_turn("telegram", "42", "de", "Hallo")
    await store.finish_turn(start, {"step": 1}, None, ["Schritt 1"])  # now cached here

    other = await Store.open(db_url)
    try:
        assert await other.delete_user("telegram", "42") is True
    finally:
        await other.close()

    fresh = await store.begin_turn("telegram", "42", "de", "Hallo?")
    assert (fresh.state, fresh.version) == (None, 0)
    assert texts(await store.transcript("telegram", "42")) == [("in", "Hallo?")]


async def test_inside_a_turn_the_store_saves_and_reloads_as_outside(store: Store) -> None:
    async with store.turn("telegram", "42"):
        start = await store.begin_turn("telegram", "42", "de", "Hallo")
        await store.finish_turn(start, {"step": 1}, None, ["Eins", "Zwei", "Drei"])
    async with store.turn("telegram", "42"):
        again = await store.begin_turn("telegram", "42", "de", "Weiter")
        assert (again.state, again.version) == ({"step": 1}, 1)
        stale = again
        await store.finish_turn(again, {"step": 2}, None, ["Vier"])
        with pytest.raises(ConcurrentUpdate):
            await store.finish_turn(stale, {"step": 99}, None, ["nie gespeichert"])
        reloaded = await store.reload(stale)
        assert (reloaded.state, reloaded.version) == ({"step": 2}, 2)
    assert await store.drain(0.1)
    assert texts(await store.transcript("telegram", "42")) == [
        ("in", "Hallo"),
        ("out", "Eins"),
        ("out", "Zwei"),
        ("out", "Drei"),
        ("in", "Weiter"),
        ("out", "Vier"),
    ]
