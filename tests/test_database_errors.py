"""A database error must not put what a user wrote into the log: statements are logged without
their parameters (`hide_parameters`), on SQLite and on PostgreSQL."""

from __future__ import annotations

import logging
import traceback
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from bot.conversation import ConversationService
from bot.knowledge.base import KnowledgeBase
from tests.support import Chat, open_service

SECRET_WORDS = "Zebrafink-4711 wohnt in der Gartenstraße"

# A database that refuses to store users' messages (a full disk, a broken replica): the
# statement fails with the user's text among its parameters.
_REFUSE = {
    "sqlite": [
        "CREATE TRIGGER refuse_inbound BEFORE INSERT ON messages WHEN NEW.direction = 'in' "
        "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_inbound() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'disk full'; END $$",
        "CREATE TRIGGER refuse_inbound BEFORE INSERT ON messages FOR EACH ROW "
        "WHEN (NEW.direction = 'in') EXECUTE FUNCTION refuse_inbound()",
    ],
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def service(
    request: pytest.FixtureRequest, tmp_path: Path, knowledge: KnowledgeBase
) -> AsyncIterator[ConversationService]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'lotse.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_url")
    service = await open_service(url, knowledge)
    yield service
    await service.store.close()


def refuse_users_messages(conn: Connection) -> None:
    for statement in _REFUSE[conn.dialect.name]:
        conn.execute(text(statement))


@pytest.mark.parametrize("returning", [False, True], ids=["first message", "returning user"])
async def test_a_message_the_database_refuses_is_not_written_into_the_log(
    service: ConversationService, returning: bool, caplog: pytest.LogCaptureFixture
) -> None:
    chat = Chat(service)
    if returning:  # a returning user's turn takes other statements (cached state, PostgreSQL)
        await chat.say("Hallo")
    await service.store.run(refuse_users_messages)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(Exception) as refused:
        await chat.say(SECRET_WORDS)
    # What a channel logs for a failed update: the exception with its traceback.
    logging.getLogger("channel").error("update failed", exc_info=refused.value)
    assert "disk full" in caplog.text  # the error itself is there for the operator
    assert "Zebrafink" not in caplog.text
    assert "Zebrafink" not in "".join(traceback.format_exception(refused.value))


@pytest.mark.parametrize("returning", [False, True], ids=["first message", "returning user"])
async def test_text_the_database_driver_cannot_send_is_not_quoted_in_its_error(
    service: ConversationService, returning: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """A lone UTF-16 surrogate cannot be encoded; asyncpg quotes the whole value in its error
    ("invalid input for query argument $2: '…'"). The store is called directly, so the test
    holds whatever cleans users' text before it gets there."""
    store = service.store
    if returning:  # then the message goes in with the cached turn's own statement
        start = await store.begin_turn("test", "anna", "de", "Hallo")
        await store.finish_turn(start, {"stage": "program"}, None, ["Guten Tag"])
    caplog.set_level(logging.DEBUG)
    with pytest.raises(Exception) as refused:
        await store.begin_turn("test", "anna", "de", SECRET_WORDS + " \ud800")
    logging.getLogger("channel").error("update failed", exc_info=refused.value)
    assert "Zebrafink" not in caplog.text
    assert "Zebrafink" not in "".join(traceback.format_exception(refused.value))
