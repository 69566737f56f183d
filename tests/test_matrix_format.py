"""How replies look in Matrix and how messages are read, without a homeserver."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from bot.channels.matrix import (
    Session,
    allowed_rooms,
    configuration_problem,
    transaction_id,
)
from bot.channels.matrix_format import (
    Command,
    message_text,
    parse_command,
    reply_body,
    reply_content,
    reply_html,
    text_html,
)
from bot.config import Settings
from bot.engine.decision import Reply
from bot.engine.state import Option
from bot.retry import Backoff

QUESTION = Reply(
    "Welches Mailprogramm benutzen Sie?",
    (Option("Microsoft Outlook", "inform:client=outlook"), Option("Android", "inform:x=y")),
)


def test_options_follow_the_text_as_a_numbered_list_in_plain_and_html() -> None:
    assert reply_body(QUESTION) == (
        "Welches Mailprogramm benutzen Sie?\n\n1. Microsoft Outlook\n2. Android"
    )
    assert reply_html(QUESTION) == (
        "Welches Mailprogramm benutzen Sie?<ol><li>Microsoft Outlook</li><li>Android</li></ol>"
    )


def test_a_reply_is_a_notice_with_an_html_body() -> None:
    content = reply_content(Reply("Hallo"))
    assert content == {
        "msgtype": "m.notice",
        "body": "Hallo",
        "format": "org.matrix.custom.html",
        "formatted_body": "Hallo",
    }


def test_markup_from_the_knowledge_base_or_users_is_escaped_everywhere() -> None:
    reply = Reply(
        'Klicken Sie <b>hier</b> & "OK" <script>x</script>',
        (Option("<img src=x onerror=alert(1)>", "p"),),
    )
    html = reply_html(reply)
    assert "<b>" not in html and "<script>" not in html and "<img" not in html
    assert "&lt;b&gt;hier&lt;/b&gt; &amp; &quot;OK&quot;" in html
    assert "<li>&lt;img src=x onerror=alert(1)&gt;</li>" in html
    assert reply_body(reply).startswith('Klicken Sie <b>hier</b> & "OK"')  # plain stays plain


def test_line_breaks_and_the_indentation_of_nested_bullets_survive_in_html() -> None:
    text = "Schritt 1\n\n  • Server\n    • Port 993"
    assert text_html(text) == (
        "Schritt 1<br><br>&nbsp;&nbsp;• Server<br>&nbsp;&nbsp;&nbsp;&nbsp;• Port 993"
    )


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("!neu", Command("neu")),
        ("/pruefen", Command("pruefen")),
        ("!Prüfen", Command("pruefen")),
        ("!löschen", Command("loeschen")),
        ("!sprache en", Command("sprache", "en")),
        ("  !hilfe  ", Command("hilfe")),
        ("!start g_thunderbird", Command("start", "g_thunderbird")),
    ],
)
def test_known_commands_start_with_an_exclamation_mark_or_a_slash(
    text: str, command: Command
) -> None:
    assert parse_command(text) == command


@pytest.mark.parametrize("text", ["neu", "!", "!!!", "/5", "Thunderbird", "! neu"])
def test_everything_else_is_text_for_the_conversation(text: str) -> None:
    assert parse_command(text) is None


@pytest.mark.parametrize(
    ("text", "command"),
    [("!foo", Command("foo")), ("/me winkt", Command("me", "winkt"))],
)
def test_an_unknown_word_is_a_command_the_service_answers_with_the_known_ones(
    text: str, command: Command
) -> None:
    assert parse_command(text) == command


def test_a_reply_is_read_without_the_quoted_message_in_front() -> None:
    content = {
        "msgtype": "m.text",
        "body": "> <@lotse:uni.example> Welches Mailprogramm?\n> 1. Outlook\n\n2",
        "m.relates_to": {"m.in_reply_to": {"event_id": "$x"}},
    }
    assert message_text(content) == "2"
    assert (
        message_text({"body": "> zitiert, aber keine Antwort"}) == "> zitiert, aber keine Antwort"
    )


def test_the_same_reply_to_the_same_message_gets_the_same_transaction_id() -> None:
    assert transaction_id("$event", 0) == transaction_id("$event", 0)
    assert transaction_id("$event", 0) != transaction_id("$event", 1)
    assert transaction_id("$event", 0) != transaction_id("$other", 0)


def test_backoff_doubles_up_to_its_maximum_and_starts_over_after_a_success() -> None:
    backoff = Backoff(start=1.0, maximum=4.0)
    delays = [backoff.next_delay() for _ in range(5)]
    # Jitter takes up to a fifth off, so bots that lost the server together do not return together.
    for delay, nominal in zip(delays, [1.0, 2.0, 4.0, 4.0, 4.0], strict=True):
        assert nominal * 0.8 <= delay <= nominal
    backoff.reset()
    assert backoff.next_delay() <= 1.0


def test_the_session_file_is_private_and_survives_a_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "session.json"
    session = Session("https://hs.example", "@lotse:hs.example", "DEVICE", "secret-token")
    session.save(path)
    assert Session.load(path) == session
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text(json.dumps({"user_id": "@x:y"}))
    assert Session.load(path) is None  # incomplete: log in anew rather than crash
    assert Session.load(tmp_path / "missing.json") is None


def test_allowed_rooms_are_a_comma_separated_list_of_ids_or_aliases() -> None:
    assert allowed_rooms(" !a:hs.example, #help:hs.example ,,") == {
        "!a:hs.example",
        "#help:hs.example",
    }
    assert allowed_rooms("") == frozenset()


def _settings(**values: object) -> Settings:
    base: dict[str, object] = {
        "matrix_homeserver": "https://hs.example",
        "matrix_user": "@lotse:hs.example",
        "matrix_password": "pw",
        "matrix_store_dir": Path("/tmp/store"),
    }
    base.update(values)
    return Settings(_env_file=None, **base)  # type: ignore[arg-type]


def test_settings_that_cannot_work_are_named_before_anything_starts() -> None:
    assert configuration_problem(_settings()) is None
    assert configuration_problem(_settings(matrix_password=None, matrix_access_token="t")) is None
    problems = {
        "LOTSE_MATRIX_HOMESERVER": _settings(matrix_homeserver="hs.example"),
        "LOTSE_MATRIX_USER": _settings(matrix_user="lotse"),
        "LOTSE_MATRIX_PASSWORD": _settings(matrix_password=None),
        "LOTSE_MATRIX_STORE_DIR": _settings(matrix_store_dir=None),
    }
    for name, settings in problems.items():
        problem = configuration_problem(settings)
        assert problem is not None and name in problem
