"""The ticket mails' subjects and bodies: German, plain text, for helpdesk agents and the
ticket system (Znuny/OTRS, Zammad, RT) that threads them on "[Lotse#N]" in the subject.
Times are given in the helpdesk's time zone (`helpdesk.timezone` in server.yaml)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.gate import sanitize
from bot.i18n import translator
from bot.tickets import labels
from bot.tickets.models import LinkOutcome, Ticket

GERMAN = translator("de")  # the helpdesk's mail is German, whatever the user's language

EVENT_HEADINGS = {
    "created": "Neue Anfrage",
    "taken": "Übernommen",
    "user_message": "Nachricht des Nutzers",
    "agent_message": "Antwort des Helpdesks",
    "handed_back": "Zurück an Lotse",
    "closed": "Geschlossen",
}
DIRECTIONS = {"in": "Nutzer", "out": "Lotse", "agent": "Helpdesk"}


def subject_tag(number: int) -> str:
    """What ticket systems and mail filters match on; keep it stable."""
    return f"[Lotse#{number}]"


def ticket_subject(ticket: Ticket, kind: str) -> str:
    summary = labels.reason_label(ticket.reason, GERMAN)
    if ticket.program:
        summary += f" – {ticket.program}" + (f" {ticket.version}" if ticket.version else "")
    reference = f"{ticket.external_ref} " if ticket.external_ref else ""
    return f"{reference}{subject_tag(ticket.number)} {EVENT_HEADINGS[kind]}: {summary}"


def local_time(value: datetime | None, zone: ZoneInfo) -> str:
    return labels.local_time(value, zone)


def check_line(last_check: dict[str, Any] | None, zone: ZoneInfo | None) -> str:
    """The check in one line; with a zone, when it ran (local time)."""
    return labels.check_summary(last_check, GERMAN, zone)


def ticket_fields(ticket: Ticket, zone: ZoneInfo) -> list[str]:
    step = f"{ticket.guide}, Schritt {ticket.step}" if ticket.guide and ticket.step else "–"
    fields = [
        f"Ticket:          Lotse#{ticket.number}",
        f"Status:          {labels.status_label(ticket.status, GERMAN)}",
        f"Grund:           {labels.reason_label(ticket.reason, GERMAN)}",
        f"Kanal:           {ticket.channel} (Nutzer-ID {ticket.user or 'gelöscht'})",
        f"Sprache:         {GERMAN.name_of_language(ticket.locale)}",
        f"Programm:        {ticket.program or '–'} {ticket.version or ''}".rstrip(),
        f"Anleitung:       {step}",
        f"Verbindungstest: {check_line(ticket.last_check, zone)}",
        f"Bearbeitet von:  {ticket.assignee or '–'}",
        f"Externe Ref.:    {ticket.external_ref or '–'}",
        f"Erstellt:        {local_time(ticket.created_at, zone)}",
    ]
    if ticket.affected > 1:  # an incident: counted, not mailed per user
        fields.append(f"Betroffene:      {ticket.affected} Nutzer (gleicher Fehler)")
    return [sanitize(field) for field in fields]  # names and references come from outside


def transcript_lines(
    messages: Sequence[tuple[str, str | None, str, datetime]], zone: ZoneInfo
) -> list[str]:
    """(direction, author, text, created_at) -> readable lines, oldest first. Sanitized again
    for the terminal and the mail: rows stored before the gate, and agents' display names."""
    lines: list[str] = []
    for direction, author, text, created_at in messages:
        who = DIRECTIONS.get(direction, direction)
        if author:
            who = f"{who} ({sanitize(author)})"
        lines.append(f"[{local_time(created_at, zone)}] {who}:")
        lines.extend("    " + line for line in sanitize(text).splitlines() or [""])
    return lines


def ticket_body(
    ticket: Ticket,
    kind: str,
    *,
    text: str | None,
    agent: str | None,
    transcript: Sequence[tuple[str, str | None, str, datetime]] | None,
    zone: ZoneInfo,
) -> str:
    """The body: what happened, the message if any, the ticket's fields, the transcript."""
    happened = {
        "created": "Lotse hat eine Anfrage an den Helpdesk übergeben.",
        "taken": f"{agent or 'Eine Mitarbeiterin / ein Mitarbeiter'} hat das Ticket übernommen.",
        "user_message": "Der Nutzer hat geschrieben (das Ticket ist in Bearbeitung):",
        "agent_message": f"{agent or 'Der Helpdesk'} hat dem Nutzer geantwortet:",
        "handed_back": "Lotse betreut den Nutzer wieder.",
        "closed": f"Das Ticket wurde geschlossen{f' von {agent}' if agent else ''}.",
    }[kind]
    lines = [happened]
    if text:
        lines += ["", *("> " + line for line in text.splitlines())]
    lines += ["", *ticket_fields(ticket, zone)]
    if transcript:
        lines += ["", "Verlauf (Passwörter und ähnliches sind unkenntlich gemacht):", ""]
        lines += transcript_lines(transcript, zone)
    lines += ["", "-- ", "Lotse, der Chat-Assistent für verschlüsselte Mailverbindungen"]
    return "\n".join(lines) + "\n"


def link_outcome(outcome: LinkOutcome, zone: ZoneInfo) -> tuple[str, list[str]]:
    """A hand-back link's outcome: what the subject says, and the body's detail lines."""
    if outcome.kind == "finished":
        return "Anleitung abgeschlossen", [f"Anleitung:       {outcome.guide or '–'}"]
    if outcome.kind == "human":
        tag = subject_tag(outcome.ticket) if outcome.ticket is not None else "–"
        return f"Nutzer bittet um einen Menschen {tag}", [f"Lotse-Ticket:    {tag}"]
    summary = check_line(outcome.last_check, None)
    return f"Verbindungstest: {summary}", [
        f"Verbindungstest: {check_line(outcome.last_check, zone)}"
    ]


def link_subject(external_ref: str | None, guide: str, outcome: str) -> str:
    reference = f"{external_ref} " if external_ref else ""
    return f"{reference}[Lotse-Link] {guide}: {outcome}"


def link_body(
    external_ref: str | None,
    guide: str,
    outcome: str,
    details: list[str],
    used_at: datetime,
    zone: ZoneInfo,
) -> str:
    lines = [
        f"Ergebnis eines Lotse-Links (Anleitung {guide}):",
        "",
        f"Ergebnis:        {outcome}",
        f"Externe Ref.:    {external_ref or '–'}",
        f"Link geöffnet:   {local_time(used_at, zone)}",
        *details,
        "",
        "-- ",
        "Lotse, der Chat-Assistent für verschlüsselte Mailverbindungen",
    ]
    return "\n".join(lines) + "\n"
