"""The agents' desk, channel-neutral: what agents type and tap, what they see on cards, and how
the desk turns both into ticket service calls and chat messages.

The desk talks to the real ticket service on a temporary SQLite database; the agents' chat is
`RecordingChat`, which keeps what would be posted (the Telegram and Matrix tests use the real
platforms, see tests/test_agents_telegram.py and tests/test_agents_matrix.py).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from bot.agents.cards import Notice, card, check_line, duration, ticket_list
from bot.agents.commands import DeskCommand, parse_command, parse_tap, ticket_number_in
from bot.i18n import translator
from bot.tickets.models import Ticket

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


def test_the_ticket_a_message_is_about_is_its_first_hash_number() -> None:
    assert ticket_number_in("Ticket #12 · neu\nAnlass: …") == 12
    assert ticket_number_in("#7 Nutzer: Ich habe #3 probiert") == 7
    assert ticket_number_in("Keine offenen Tickets.") is None
    assert ticket_number_in(None) is None


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
        "Anlass: Nutzer möchte mit einem Menschen sprechen",
        "Programm: Thunderbird, Version 60.3.1, Anleitung thunderbird, Schritt 3",
        "Verbindungstest: Fehler (IMAP 993 ✓, SMTP 587 ✗)",
        "Kanal: telegram, Sprache: de",
        "Wartet seit 7 Min. auf eine Antwort.",
        "Antworten Sie auf diese Nachricht, um dem Nutzer zu schreiben.",
    ]
    assert [(a.label, a.payload, a.command) for a in shown.actions] == [
        ("Übernehmen", "desk:take:12", "/nehmen 12"),
        ("An Lotse zurückgeben", "desk:back:12", "/anleitung 12"),
        ("Schließen", "desk:close:12", "/schliessen 12"),
    ]


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
    assert "Anlass: Mailprogramm unbekannt" in shown.text


def test_durations_are_short_and_readable() -> None:
    assert duration(timedelta(seconds=20), DE) == "weniger als 1 Min."
    assert duration(timedelta(minutes=59), DE) == "59 Min."
    assert duration(timedelta(hours=3, minutes=5), DE) == "3 Std. 5 Min."
    assert duration(timedelta(days=4, hours=2), DE) == "4 Tagen"


def test_a_check_line_reads_warnings_too() -> None:
    report = {"overall": "warning", "endpoints": [{"protocol": "pop3", "port": 995,
                                                    "status": "warning"}]}  # fmt: skip
    assert check_line(report, DE) == "Warnungen (POP3 995 !)"


def test_the_ticket_list_shows_open_tickets_oldest_first_and_skips_closed_ones() -> None:
    tickets = [
        a_ticket(number=14, status="open", assignee="Bert"),
        a_ticket(number=13, status="closed"),
        a_ticket(number=12),
    ]
    assert ticket_list(tickets, NOW, DE).text.split("\n") == [
        "Offene Tickets:",
        "#12 · neu · Nutzer möchte mit einem Menschen sprechen · seit 7 Min. · bei niemand",
        "#14 · in Bearbeitung · Nutzer möchte mit einem Menschen sprechen · seit 7 Min. · bei Bert",
    ]
    assert ticket_list([], NOW, DE) == Notice("Keine offenen Tickets.")
