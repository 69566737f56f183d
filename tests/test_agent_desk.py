"""The agents' desk, channel-neutral: what agents type and tap, what they see on cards, and how
the desk turns both into ticket service calls and chat messages.

Where each ticket's card is (`card_refs`) is tested on SQLite and PostgreSQL; the Telegram and
Matrix tests run the desk on the real platforms (tests/test_agents_telegram.py and
tests/test_agents_matrix.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.agents import card_refs
from bot.agents.card_refs import ChatPlace
from bot.agents.cards import (
    Notice,
    agent_answer,
    card,
    duration,
    ticket_list,
    ticket_named_at_start,
    user_message,
)
from bot.agents.commands import DeskCommand, parse_command, parse_tap
from bot.i18n import translator
from bot.storage.store import Store
from bot.tickets import records
from bot.tickets.models import Ticket
from bot.tickets.records import NewTicket

DE = translator("de")
NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def a_ticket(**changes: object) -> Ticket:
    ticket = Ticket(
        number=12,
        status="new",
        reason="requested",
        channel="telegram",
        user="1001",
        locale="de",
        program="thunderbird",
        version="60.3.1",
        guide="thunderbird",
        step=3,
        last_check=None,
        assignee=None,
        external_ref=None,
        created_at=NOW - timedelta(minutes=7),
        taken_at=None,
        first_answer_at=None,
        closed_at=None,
    )
    return replace(ticket, **changes)  # type: ignore[arg-type]


# --- reading what agents type ----------------------------------------------------------------


def test_an_answer_command_keeps_the_agents_text_exactly_with_its_line_breaks() -> None:
    command = parse_command("/antwort 12 Guten Tag,\n\nbitte  öffnen Sie <Extras>.")
    assert command == DeskCommand("antwort", 12, "Guten Tag,\n\nbitte  öffnen Sie <Extras>.")


def test_commands_are_read_with_either_prefix_a_bot_name_a_hash_and_umlauts() -> None:
    assert parse_command("!antwort #7 Hallo") == DeskCommand("antwort", 7, "Hallo")
    assert parse_command("/nehmen@LotseTestBot 3") == DeskCommand("nehmen", 3)
    assert parse_command("/schließen 4") == DeskCommand("schliessen", 4)
    assert parse_command("/Anleitung 5 thunderbird") == DeskCommand("anleitung", 5, "thunderbird")
    assert parse_command("/antwort\n12 Zeile") == DeskCommand("antwort", 12, "Zeile")


def test_a_command_without_a_number_leaves_the_number_to_the_replied_message() -> None:
    assert parse_command("/antwort Guten Tag") == DeskCommand("antwort", None, "Guten Tag")
    assert parse_command("/schliessen") == DeskCommand("schliessen")
    # "12abc" is no number: the text goes to the reply's ticket, untouched.
    assert parse_command("/antwort 12abc") == DeskCommand("antwort", None, "12abc")


def test_plain_text_is_no_command_and_unknown_commands_are_recognised_as_unknown() -> None:
    assert parse_command("Wer kümmert sich um die 12?") is None
    assert parse_command("/ 12") is None
    unknown = parse_command("/kaffee bitte")
    assert unknown is not None and not unknown.known and unknown.name == "kaffee"


def test_button_payloads_name_the_action_and_the_ticket_and_forged_ones_are_refused() -> None:
    tap = parse_tap("desk:take:12")
    assert tap is not None and (tap.action, tap.number) == ("take", 12)
    for forged in ("desk:take:", "desk:explode:12", "1|next_step", "desk:close:12x", ""):
        assert parse_tap(forged) is None, forged


# --- what agents see -------------------------------------------------------------------------


def test_a_new_tickets_card_says_everything_an_agent_needs_in_short_lines() -> None:
    report = {
        "overall": "error",
        "endpoints": [
            {"protocol": "imap", "port": 993, "status": "ok"},
            {"protocol": "smtp", "port": 587, "status": "error"},
        ],
    }
    shown = card(a_ticket(last_check=report), NOW, DE, lambda _guide: "Thunderbird")
    assert shown.text.split("\n") == [
        "Ticket #12 · neu",
        "Anlass: Nutzer bittet um einen Menschen",
        "Programm: Thunderbird, Version 60.3.1, Anleitung thunderbird, Schritt 3",
        "Verbindungstest: Fehler (IMAP 993 ✓, SMTP 587 ✗)",
        "Kanal: telegram, Sprache: Deutsch",
        "Wartet seit 7 Min. auf eine Antwort.",
        "Antworten Sie auf diese Nachricht, um dem Nutzer zu schreiben.",
    ]
    assert [(a.label, a.payload, a.command) for a in shown.actions] == [
        ("Übernehmen", "desk:take:12", "/nehmen 12"),
        ("An Lotse zurückgeben", "desk:back:12", "/anleitung 12"),
        ("Schließen", "desk:close:12", "/schliessen 12"),
    ]


def test_an_incident_card_says_how_many_users_the_server_error_affects() -> None:
    report = {
        "overall": "error",
        "endpoints": [{"protocol": "imap", "port": 993, "status": "error"}],
    }
    incident = dataclasses.replace(a_ticket(last_check=report), reason="server_error", affected=37)
    lines = card(incident, NOW, DE).text.split("\n")
    assert lines[2] == "Betrifft 37 Nutzer (gleicher Fehler beim Verbindungstest)."
    alone = dataclasses.replace(incident, affected=1)  # only the user who opened it
    assert not any("Betrifft" in line for line in card(alone, NOW, DE).text.split("\n"))


def test_a_taken_card_names_the_agent_and_a_closed_one_offers_nothing() -> None:
    taken = card(
        a_ticket(status="open", assignee="Bert", first_answer_at=NOW - timedelta(minutes=4)),
        NOW,
        DE,
    )
    assert "Ticket #12 · in Bearbeitung" in taken.text
    assert "Übernommen von Bert." in taken.text
    assert "Erste Antwort nach 3 Min." in taken.text
    assert [a.payload for a in taken.actions] == ["desk:back:12", "desk:close:12"]
    closed = card(a_ticket(status="closed", assignee="Bert", closed_at=NOW), NOW, DE)
    assert "Geschlossen von Bert." in closed.text
    assert closed.actions == ()


def test_a_ticket_before_any_guide_or_check_says_so_instead_of_leaving_gaps() -> None:
    shown = card(
        a_ticket(program=None, version=None, guide=None, step=None, reason="unknown_program"),
        NOW,
        DE,
    )
    assert "Programm: noch nicht bekannt" in shown.text
    assert "Verbindungstest: nicht durchgeführt" in shown.text
    assert "Anlass: Mailprogramm ohne Anleitung" in shown.text


def test_durations_are_short_and_readable() -> None:
    assert duration(timedelta(seconds=20), DE) == "weniger als 1 Min."
    assert duration(timedelta(minutes=59), DE) == "59 Min."
    assert duration(timedelta(hours=3, minutes=5), DE) == "3 Std. 5 Min."
    assert duration(timedelta(days=4, hours=2), DE) == "4 Tagen"


def test_a_check_line_reads_warnings_too() -> None:
    report = {"overall": "warning", "endpoints": [{"protocol": "pop3", "port": 995,
                                                    "status": "warning"}]}  # fmt: skip
    shown = card(a_ticket(last_check=report), NOW, DE).text
    assert "Verbindungstest: Warnungen (POP3 995 !)" in shown.split("\n")


def test_the_ticket_list_shows_open_tickets_oldest_first_and_skips_closed_ones() -> None:
    tickets = [
        a_ticket(number=14, status="open", assignee="Bert"),
        a_ticket(number=13, status="closed"),
        a_ticket(number=12),
    ]
    assert ticket_list(tickets, NOW, DE).text.split("\n") == [
        "Offene Tickets:",
        "#12 · neu · Nutzer bittet um einen Menschen · seit 7 Min. · bei niemand",
        "#14 · in Bearbeitung · Nutzer bittet um einen Menschen · seit 7 Min. · bei Bert",
    ]
    assert ticket_list([], NOW, DE) == Notice("Keine offenen Tickets.")


def test_an_agents_answer_is_shown_to_the_other_chats_with_who_wrote_it_and_where() -> None:
    shown = agent_answer(12, "Bert (@bert)", "telegram", "Bitte Port 993.", DE)
    assert shown == Notice("#12 Antwort von Bert (@bert) über Telegram: Bitte Port 993.")
    assert agent_answer(12, "Petra", None, "Hallo", DE).text == "#12 Antwort von Petra: Hallo"
    assert ticket_named_at_start(shown.text, DE) == 12  # an old one, not yet recorded
    english = agent_answer(12, "Bert", "matrix", "Hi", translator("en")).text
    assert english == "#12 Answer from Bert via Matrix: Hi"


def test_only_a_card_or_relay_names_its_ticket_at_the_start_never_the_list_or_an_error() -> None:
    """For cards and relays posted before their ids were recorded: the "#N" they begin with."""
    assert ticket_named_at_start(card(a_ticket(), NOW, DE).text, DE) == 12
    assert ticket_named_at_start(user_message(7, "Ich habe #3 probiert", DE).text, DE) == 7
    listing = ticket_list([a_ticket(number=3)], NOW, DE).text
    assert listing.split("\n")[1].startswith("#3 · neu")
    for other in (listing, "Ein Ticket Nr. 99 gibt es nicht.", "#3 übernommen von Bert.", None):
        assert ticket_named_at_start(other, DE) is None, other
    english = translator("en")
    assert ticket_named_at_start(user_message(7, "Hi", english).text, english) == 7


# --- where each ticket's card is, for every instance ------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    """A migrated store on each database Lotse runs on."""
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    opened = await Store.open(url)
    yield opened
    await opened.close()


async def test_a_tickets_card_is_found_per_chat_and_a_fresh_card_replaces_the_old_one(
    store: Store,
) -> None:
    new = NewTicket("requested", "telegram", "1001", "de", None, None, None, None, None, None)
    ticket, _created = await store.run(records.create, new, None)
    group, room = ChatPlace("telegram", "-1001234567890"), ChatPlace("matrix", "!helpdesk:uni")
    assert await store.run(card_refs.card_of, ticket.number, group) is None

    await store.run(card_refs.save_card, ticket.number, group, "41")
    await store.run(card_refs.save_card, ticket.number, room, "$card")
    assert await store.run(card_refs.card_of, ticket.number, group) == "41"
    assert await store.run(card_refs.card_of, ticket.number, room) == "$card"
    assert await store.run(card_refs.ticket_of_card, group, "41") == ticket.number
    assert await store.run(card_refs.ticket_of_card, room, "41") is None  # another chat's id

    # A card posted again (the first could not be found) is the one to edit from now on.
    await store.run(card_refs.save_card, ticket.number, group, "57")
    assert await store.run(card_refs.card_of, ticket.number, group) == "57"
    assert await store.run(card_refs.ticket_of_card, group, "41") is None


async def test_relays_and_status_lines_are_found_as_the_tickets_messages_and_nothing_else_is(
    store: Store,
) -> None:
    new = NewTicket("requested", "telegram", "1001", "de", None, None, None, None, None, None)
    ticket, _created = await store.run(records.create, new, None)
    group, room = ChatPlace("telegram", "-1001234567890"), ChatPlace("matrix", "!helpdesk:uni")
    await store.run(card_refs.save_card, ticket.number, group, "41")
    await store.run(card_refs.save_message, ticket.number, group, "42")  # "#1 Nutzer: …"
    await store.run(card_refs.save_message, ticket.number, room, "$relay")
    await store.run(card_refs.save_message, ticket.number, room, "$relay")  # posted twice: fine

    assert await store.run(card_refs.ticket_of_message, group, "41") == ticket.number
    assert await store.run(card_refs.ticket_of_message, group, "42") == ticket.number
    assert await store.run(card_refs.ticket_of_message, room, "$relay") == ticket.number
    # The list of tickets, 43, was never recorded: a reply to it answers no ticket.
    assert await store.run(card_refs.ticket_of_message, group, "43") is None
    assert await store.run(card_refs.ticket_of_message, room, "42") is None
