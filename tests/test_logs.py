"""Logs for operators: one JSON object per line when asked, and nothing at INFO that tells what
a user wrote or who they are."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from bot.config import Settings
from bot.conversation import ConversationService
from bot.logs import configure_logging
from tests.support import Chat


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_json_format_writes_one_object_per_line_with_extras_and_exceptions(
    restore_logging: None,
) -> None:
    stream = io.StringIO()
    configure_logging("json", "INFO", stream)
    log = logging.getLogger("bot.example")
    log.info("serving %d channels", 2, extra={"instance": "vm1:42"})
    log.debug("not shown at INFO")
    try:
        raise ValueError("kaputt")
    except ValueError:
        log.exception("a turn failed")

    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["message"] == "serving 2 channels"
    assert (first["level"], first["logger"], first["instance"]) == ("INFO", "bot.example", "vm1:42")
    assert first["time"].endswith("+00:00")
    assert second["level"] == "ERROR"
    assert "ValueError: kaputt" in second["exception"]


def test_text_format_is_one_readable_line(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("text", "WARNING", stream)
    logging.getLogger("bot.example").warning("Rasa is away")
    logging.getLogger("bot.example").info("hidden")
    assert stream.getvalue().count("\n") == 1
    assert "WARNING bot.example: Rasa is away" in stream.getvalue()


async def test_a_conversation_logs_neither_the_users_text_nor_their_id_at_info(
    service: ConversationService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    chat = Chat(service, user="4711-geheim")
    for text in ("Hallo", "Ich nutze Thunderbird 60", "weiter", "mein passwort ist Sommer2024"):
        await chat.say(text)
    logged = "\n".join(record.getMessage() for record in caplog.records if record.levelno >= 20)
    assert "4711-geheim" not in logged
    for word in ("Thunderbird", "Sommer2024", "passwort", "Hallo"):
        assert word not in logged


def test_every_configured_secret_is_masked_in_messages_extras_and_tracebacks(
    restore_logging: None,
) -> None:
    token = "123456:SECRET-TOKEN-abcdef"
    settings = Settings(
        _env_file=None,
        database_url="postgresql+asyncpg://lotse:db%2Fpass%20word@db:5432/lotse",
        rasa_url="http://nlu:rasa-pass-7b1f@nlu:5005",
        telegram_token=token,
        smtp_url="smtps://desk:smtp-pass-99@mail.example:465",
        handoff_secret="h" * 32,
    )
    secrets = ["db/pass word", "db%2Fpass%20word", "rasa-pass-7b1f", token]
    secrets += ["smtp-pass-99", "h" * 32]
    for log_format in ("text", "json"):
        stream = io.StringIO()
        configure_logging(log_format, "DEBUG", stream, secrets=settings.secret_values())
        log = logging.getLogger("bot.example")
        log.warning("connecting to %s", settings.database_url, extra={"url": settings.rasa_url})
        log.info("login as desk with %s", "smtp-pass-99")
        try:
            raise RuntimeError(f"The token `{token}` was no")
        except RuntimeError:
            log.exception("the telegram channel failed")
        try:
            raise OSError("password db/pass word refused")
        except OSError as error:
            log.error("database: %s", "away", exc_info=error)

        written = stream.getvalue()
        assert "lotse:***@db:5432" in written
        assert "The token `***` was no" in written
        assert "Traceback" in written
        for secret in secrets:
            assert secret not in written, (log_format, secret)
        if log_format == "json":
            entries = [json.loads(line) for line in written.splitlines()]
            assert entries[0]["url"] == "http://nlu:***@nlu:5005"
            assert "RuntimeError: The token `***`" in entries[2]["exception"]


def test_short_and_unset_secrets_leave_the_log_readable(restore_logging: None) -> None:
    settings = Settings(_env_file=None, database_url="sqlite:///x.db", handoff_secret="abc")
    assert settings.secret_values() == []
    stream = io.StringIO()
    configure_logging("text", "INFO", stream, secrets=settings.secret_values())
    logging.getLogger("bot.example").info("abc %s", "def")
    assert "abc def" in stream.getvalue()
