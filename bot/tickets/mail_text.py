"""The ticket mails' subjects and bodies: German, plain text, for helpdesk agents and the
ticket system (Znuny/OTRS, Zammad, RT) that threads them on "[Lotse#N]" in the subject."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.tickets.models import Ticket

BERLIN = ZoneInfo("Europe/Berlin")

REASONS = {
    "requested": "Nutzer bittet um einen Menschen",
    "stuck": "Nutzer kommt bei einem Schritt nicht weiter",
    "unknown_program": "Mailprogramm ohne Anleitung",
    "server_error": "Verbindungstest meldet einen Serverfehler",
}
STATUS_NAMES = {
    "new": "neu",
    "open": "in Bearbeitung",
    "waiting": "zurück bei Lotse",
    "closed": "geschlossen",
}
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
    summary = REASONS.get(ticket.reason, ticket.reason)
    if ticket.program:
        summary += f" – {ticket.program}" + (f" {ticket.version}" if ticket.version else "")
    reference = f"{ticket.external_ref} " if ticket.external_ref else ""
    return f"{reference}{subject_tag(ticket.number)} {EVENT_HEADINGS[kind]}: {summary}"


def local_time(value: datetime | None) -> str:
    return value.astimezone(BERLIN).strftime("%d.%m.%Y %H:%M") if value is not None else "–"


def check_line(last_check: dict[str, Any] | None) -> str:
    if not last_check:
        return "nicht durchgeführt"
    overall = {"ok": "in Ordnung", "warning": "Warnungen", "error": "FEHLER"}.get(
        str(last_check.get("overall")), str(last_check.get("overall"))
    )
    problems = [
        f"{e.get('protocol')}/{e.get('port')}: {e.get('status')}"
        for e in last_check.get("endpoints", [])
        if e.get("status") != "ok"
    ]
    started = last_check.get("started")
    line = f"{overall}" + (f" ({started})" if started else "")
    return line + ("; " + ", ".join(problems) if problems else "")


def ticket_fields(ticket: Ticket) -> list[str]:
    step = f"{ticket.guide}, Schritt {ticket.step}" if ticket.guide and ticket.step else "–"
    return [
        f"Ticket:          Lotse#{ticket.number}",
        f"Status:          {STATUS_NAMES.get(ticket.status, ticket.status)}",
        f"Grund:           {REASONS.get(ticket.reason, ticket.reason)}",
        f"Kanal:           {ticket.channel} (Nutzer-ID {ticket.user or 'gelöscht'})",
        f"Sprache:         {ticket.locale}",
        f"Programm:        {ticket.program or '–'} {ticket.version or ''}".rstrip(),
        f"Anleitung:       {step}",
        f"Verbindungstest: {check_line(ticket.last_check)}",
        f"Bearbeitet von:  {ticket.assignee or '–'}",
        f"Externe Ref.:    {ticket.external_ref or '–'}",
        f"Erstellt:        {local_time(ticket.created_at)}",
    ]


def transcript_lines(messages: Sequence[tuple[str, str | None, str, datetime]]) -> list[str]:
    """(direction, author, text, created_at) -> readable lines, oldest first."""
    lines: list[str] = []
    for direction, author, text, created_at in messages:
        who = DIRECTIONS.get(direction, direction)
        if author:
            who = f"{who} ({author})"
        lines.append(f"[{local_time(created_at)}] {who}:")
        lines.extend("    " + line for line in text.splitlines() or [""])
    return lines


def ticket_body(
    ticket: Ticket,
    kind: str,
    *,
    text: str | None,
    agent: str | None,
    transcript: Sequence[tuple[str, str | None, str, datetime]] | None,
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
    lines += ["", *ticket_fields(ticket)]
    if transcript:
        lines += ["", "Verlauf (Passwörter und ähnliches sind unkenntlich gemacht):", ""]
        lines += transcript_lines(transcript)
    lines += ["", "-- ", "Lotse, der Chat-Assistent für verschlüsselte Mailverbindungen"]
    return "\n".join(lines) + "\n"


def link_subject(external_ref: str | None, guide: str, outcome: str) -> str:
    reference = f"{external_ref} " if external_ref else ""
    return f"{reference}[Lotse-Link] {guide}: {outcome}"


def link_body(
    external_ref: str | None, guide: str, outcome: str, details: list[str], used_at: datetime
) -> str:
    lines = [
        f"Ergebnis eines Lotse-Links (Anleitung {guide}):",
        "",
        f"Ergebnis:        {outcome}",
        f"Externe Ref.:    {external_ref or '–'}",
        f"Link geöffnet:   {local_time(used_at)}",
        *details,
        "",
        "-- ",
        "Lotse, der Chat-Assistent für verschlüsselte Mailverbindungen",
    ]
    return "\n".join(lines) + "\n"
