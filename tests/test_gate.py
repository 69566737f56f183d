"""The gate every text a user sends passes (bot/gate.py): typed messages and command arguments
are cleaned, cut and redacted before they are stored, understood, put in a ticket or mailed.
Through the conversation service on SQLite and PostgreSQL, the ticket mail through the real
Postfix, and `lotse chat` as a process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import insert

from bot.app import App
from bot.conversation import ConversationService
from bot.gate import CUT_MARKER, MAX_MESSAGE_LENGTH
from bot.knowledge.base import KnowledgeBase
from bot.storage.store import Store
from bot.storage.tables import TicketMessage
from bot.tickets.outbox import deliver_queue
from bot.tickets.service import TicketService
from bot.tickets.smtp import SmtpSender
from tests.servers.mail import Mailbox
from tests.support import MAIL_FROM, REPO, Chat, UserInbox, open_app

# What reaches a bot from clients and scripts, and must never reach a database, terminal or mail.
LONE_SURROGATE = "Hallo \ud800 ich nutze Thunderbird 60"
NUL = "Outlook\x002016"
ESCAPES = "\x1b[2J\x1b[31mrot\x1b[0m \x1b]0;gehackt\x07und \x9b31mC1\x1b]8;;http://x\x1b\\Link"
UNSAFE = ("\x00", "\x1b", "\x07", "\x9b", "\ud800")


@pytest.fixture(params=["sqlite", "postgresql"])
async def any_app(request: pytest.FixtureRequest, knowledge: KnowledgeBase) -> AsyncIterator[App]:
    """On either database; with tickets when the test asks for them (`any_tickets`)."""
    url_fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url = request.getfixturevalue(url_fixture)
    app = await open_app(url, knowledge, tickets="any_tickets" in request.fixturenames)
    yield app
    await app.close()


@pytest.fixture
def any_service(any_app: App) -> ConversationService:
    return any_app.service


@pytest.fixture
def any_tickets(any_app: App) -> TicketService:
    return any_app.tickets


async def stored_texts(service: ConversationService, chat: Chat) -> list[str]:
    return [m.text for m in await service.store.transcript(chat.channel, chat.user)]


async def test_a_lone_surrogate_nul_and_escape_sequences_are_answered_and_stored_harmless(
    any_service: ConversationService,
) -> None:
    chat = Chat(any_service)
    await chat.say(LONE_SURROGATE)
    assert "Mozilla Thunderbird (60.3.1) – Schritt 1 von 5" in chat.text  # understood
    await chat.say(NUL)
    await chat.say(ESCAPES)
    await chat.say("Zeile eins\n\tZeile zwei\r\nZeile drei")
    incoming = await stored_texts(any_service, chat)
    joined = "\n".join(incoming)
    assert not any(char in joined for char in UNSAFE)
    assert "Hallo \ufffd ich nutze Thunderbird 60" in incoming
    assert "Outlook\ufffd2016" in incoming
    assert "rot und C1Link" in incoming  # the escape sequences are gone, the words stay
    assert "Zeile eins\n\tZeile zwei\nZeile drei" in incoming


async def test_a_message_of_100000_characters_is_answered_politely_and_stored_cut_with_a_marker(
    any_service: ConversationService,
) -> None:
    chat = Chat(any_service)
    await chat.say("Thunderbird 60")
    await chat.say("Bitte helfen Sie mir. " + "x" * 100_000)
    assert "zu lang" in chat.text
    assert "Schritt 1 von 5" in chat.text  # and the user stays where they were
    stored = [text for text in await stored_texts(any_service, chat) if "Bitte helfen" in text]
    assert len(stored) == 1
    assert len(stored[0]) == MAX_MESSAGE_LENGTH
    assert stored[0].endswith(CUT_MARKER)


async def test_a_password_in_a_command_argument_is_redacted_and_the_user_warned(
    any_service: ConversationService,
) -> None:
    chat = Chat(any_service)
    await chat.say("Thunderbird 60")
    await chat.command("hilfe", "mein passwort: Sommer Zeit 2024")
    assert "niemals Ihr Passwort" in chat.text
    assert "„weiter“" in chat.text  # the command still does its job
    stored = "\n".join(await stored_texts(any_service, chat))
    assert "/hilfe mein passwort: [Passwort entfernt]" in stored
    assert "Sommer" not in stored and "2024" not in stored


async def test_an_unknown_command_is_answered_with_the_known_ones_and_stored_redacted(
    any_service: ConversationService,
) -> None:
    chat = Chat(any_service)
    await chat.command("mensh", "Passwort ist Kaffee#7")
    assert "Diesen Befehl kenne ich nicht" in chat.text
    assert "/mensch" in chat.text and "/hilfe" in chat.text
    assert "niemals Ihr Passwort" in chat.text
    assert "Welches Mailprogramm benutzen Sie?" in chat.text
    stored = "\n".join(await stored_texts(any_service, chat))
    assert "/mensh Passwort ist [Passwort entfernt]" in stored
    assert "Kaffee" not in stored


async def test_what_a_user_sent_reaches_the_ticket_and_its_mail_cleaned_cut_and_redacted(
    any_service: ConversationService, any_tickets: TicketService, helpdesk_mailbox: Mailbox
) -> None:
    tickets = any_tickets
    tickets.register_user_sender("test", UserInbox().send)
    chat = Chat(any_service)
    await chat.say("Thunderbird 60")
    await chat.say(ESCAPES)
    await chat.say(NUL)
    await chat.say("Fehlerprotokoll: " + "0x800CCC0E " * 10_000)
    await chat.command("mensch", "mein Passwort ist Sommer Zeit 2024, bitte rufen Sie an")
    assert "niemals Ihr Passwort" in chat.text
    assert "Anfrage" in chat.text  # the ticket was opened all the same

    await tickets.take(1, "Petra")
    await chat.say(LONE_SURROGATE)  # relayed to the agent
    in_ticket = "\n".join(m.text for m in await tickets.transcript(1))
    assert not any(char in in_ticket for char in UNSAFE)
    assert "Sommer" not in in_ticket and "Zeit 2024" not in in_ticket
    assert "/mensch mein Passwort ist [Passwort entfernt]" in in_ticket
    assert "rot und C1Link" in in_ticket and CUT_MARKER in in_ticket
    assert "Hallo \ufffd ich nutze Thunderbird 60" in in_ticket

    sender = SmtpSender(helpdesk_mailbox.url("smtp"), helpdesk_mailbox.ca)
    report = await deliver_queue(any_service.store, sender, MAIL_FROM)
    assert report.failed == 0 and report.sent >= 2
    mails = await helpdesk_mailbox.wait_for(report.sent)
    bodies = "\n".join(_body(mail) for mail in mails)
    assert not any(char in bodies for char in UNSAFE)
    assert "Sommer" not in bodies and "Zeit 2024" not in bodies
    assert "/mensch mein Passwort ist [Passwort entfernt]" in bodies
    assert "rot und C1Link" in bodies and CUT_MARKER.strip() in bodies
    assert bodies.count("0x800CCC0E") < MAX_MESSAGE_LENGTH // len("0x800CCC0E ") + 1


def _body(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def _lotse(url: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        input=stdin,
        cwd=REPO,
        env=dict(os.environ, LOTSE_DATABASE_URL=url),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


async def test_lotse_chat_answers_an_unknown_command_and_stores_only_cleaned_text(
    tmp_path: Path,
) -> None:
    database = tmp_path / "db.sqlite3"
    lines = [
        "/foo",
        "Thunderbird 60",
        "/mensch mein Passwort lautet: Kaffee#7",
        "\x1b[31mrot\x1b[0m",
    ]
    result = _lotse(
        f"sqlite:///{database}",
        "chat",
        "--user",
        "anna",
        stdin="".join(f"{line}\n" for line in lines),
    )
    assert "Diesen Befehl kenne ich nicht. Ich verstehe diese Befehle: /start, /neu" in (
        result.stdout
    )
    assert "Mozilla Thunderbird (60.3.1) – Schritt 1 von 5" in result.stdout
    assert "niemals Ihr Passwort" in result.stdout
    assert "\x1b" not in result.stdout
    assert result.stderr == ""  # no traceback, no AssertionError
    store = await Store.open(f"sqlite:///{database}")
    try:
        stored = [m.text for m in await store.transcript("console", "anna")]
    finally:
        await store.close()
    assert "/foo" in stored and "rot" in stored
    assert "/mensch mein Passwort lautet: [Passwort entfernt]" in stored
    assert "Kaffee" not in "\n".join(stored)


@pytest.mark.parametrize("position", [4000, 4080, 4090, 4200])
async def test_a_password_where_a_long_message_is_cut_leaves_no_piece_behind(
    service: ConversationService, position: int
) -> None:
    chat = Chat(service)
    text = "a" * position + "\nmein Passwort: Sommer Zeit 2024\n" + "b" * 10_000
    await chat.say(text)
    assert "zu lang" in chat.text
    assert "niemals Ihr Passwort" in chat.text  # and a password was removed
    stored = (await stored_texts(service, chat))[0]
    assert stored.endswith(CUT_MARKER) and len(stored) <= MAX_MESSAGE_LENGTH
    assert not any(piece in stored for piece in ("Somm", "Zeit", "2024"))


async def test_lotse_tickets_show_prints_rows_from_before_the_gate_and_agent_names_harmless(
    sqlite_url: str, knowledge: KnowledgeBase
) -> None:
    app = await open_app(sqlite_url, knowledge, tickets=True)
    service, tickets = app.service, app.tickets
    tickets.register_user_sender("test", UserInbox().send)
    await Chat(service).command("mensch")
    await tickets.take(1, "Petra\x1b]0;root\x07")  # a display name is the agent's choice
    old_row = insert(TicketMessage).values(
        ticket_id=1, direction="in", text="alt \x1b[2J\x1b[31mrot\x00"
    )
    await service.store.run(lambda conn: conn.execute(old_row))
    await service.close()

    shown = _lotse(sqlite_url, "tickets", "show", "1").stdout
    assert "alt rot\ufffd" in shown
    assert not any(char in shown for char in UNSAFE)
