"""The ticket mails' subjects and bodies: plain text, for helpdesk agents and the ticket
system (Znuny/OTRS, Zammad, RT) that threads them on "[Lotse#N]" in the subject. In the
helpdesk's language (`MailSettings.locale`: German, whatever the user's); `lotse tickets show`
prints the same fields. Times are given in the helpdesk's time zone (`helpdesk.timezone` in
server.yaml)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.gate import sanitize
from bot.i18n import Translator
from bot.tickets import labels
from bot.tickets.models import LinkOutcome, Ticket

__all__ = [
    "LABEL_WIDTH",
    "check_line",
    "event_heading",
    "field",
    "link_body",
    "link_outcome",
    "link_subject",
    "local_time",
    "subject_tag",
    "ticket_body",
    "ticket_fields",
    "ticket_subject",
    "transcript_lines",
]

LABEL_WIDTH = 16  # "Verbindungstest:": the values of the fields start in one column


def subject_tag(number: int) -> str:
    """What ticket systems and mail filters match on; keep it stable."""
    return f"[Lotse#{number}]"


def event_heading(kind: str, tr: Translator) -> str:
    """The event a mail is about, in its subject."""
    _ = tr.gettext
    headings = {
        "created": _("Neue Anfrage"),
        "taken": _("Übernommen"),
        "user_message": _("Nachricht des Nutzers"),
        "agent_message": _("Antwort des Helpdesks"),
        "handed_back": _("Zurück an Lotse"),
        "closed": _("Geschlossen"),
    }
    return headings[kind]


def ticket_subject(ticket: Ticket, kind: str, tr: Translator) -> str:
    summary = labels.reason_label(ticket.reason, tr)
    if ticket.program:
        summary += f" – {ticket.program}" + (f" {ticket.version}" if ticket.version else "")
    reference = f"{ticket.external_ref} " if ticket.external_ref else ""
    heading = event_heading(kind, tr)
    return f"{reference}{subject_tag(ticket.number)} {heading}: {summary}"


def local_time(value: datetime | None, zone: ZoneInfo) -> str:
    return labels.local_time(value, zone)


def check_line(last_check: dict[str, Any] | None, zone: ZoneInfo | None, tr: Translator) -> str:
    """The check in one line; with a zone, when it ran (local time)."""
    return labels.check_summary(last_check, tr, zone)


def field(label: str, value: object) -> str:
    """One line of a ticket's or link's fields: "Kanal:           telegram (…)"."""
    return f"{label:<{LABEL_WIDTH}} {value}"


def ticket_fields(ticket: Ticket, zone: ZoneInfo, tr: Translator) -> list[str]:
    _ = tr.gettext
    step = "–"
    if ticket.guide and ticket.step:
        step = _("{guide}, Schritt {step}").format(guide=ticket.guide, step=ticket.step)
    channel = _("{channel} (Nutzer-ID {user})").format(
        channel=ticket.channel, user=ticket.user or _("gelöscht")
    )
    fields = [
        field(_("Ticket:"), f"Lotse#{ticket.number}"),
        field(_("Status:"), labels.status_label(ticket.status, tr)),
        field(_("Grund:"), labels.reason_label(ticket.reason, tr)),
        field(_("Kanal:"), channel),
        field(_("Sprache:"), tr.name_of_language(ticket.locale)),
        field(_("Programm:"), f"{ticket.program or '–'} {ticket.version or ''}".rstrip()),
        field(_("Anleitung:"), step),
        field(_("Verbindungstest:"), check_line(ticket.last_check, zone, tr)),
        field(_("Bearbeitet von:"), ticket.assignee or "–"),
        field(_("Externe Ref.:"), ticket.external_ref or "–"),
        field(_("Erstellt:"), local_time(ticket.created_at, zone)),
    ]
    if ticket.affected > 1:  # an incident: counted, not mailed per user
        affected = _("{count} Nutzer (gleicher Fehler)").format(count=ticket.affected)
        fields.append(field(_("Betroffene:"), affected))
    return [sanitize(line) for line in fields]  # names and references come from outside


def transcript_lines(
    messages: Sequence[tuple[str, str | None, str, datetime]], zone: ZoneInfo, tr: Translator
) -> list[str]:
    """(direction, author, text, created_at) -> readable lines, oldest first. Sanitized again
    for the terminal and the mail: rows stored before the gate, and agents' display names."""
    _ = tr.gettext
    directions = {"in": _("Nutzer"), "out": _("Lotse"), "agent": _("Helpdesk")}
    lines: list[str] = []
    for direction, author, text, created_at in messages:
        who = directions.get(direction, direction)
        if author:
            who = f"{who} ({sanitize(author)})"
        lines.append(f"[{local_time(created_at, zone)}] {who}:")
        lines.extend("    " + line for line in sanitize(text).splitlines() or [""])
    return lines


def _happened(kind: str, agent: str | None, tr: Translator) -> str:
    """The body's first line: what happened to the ticket."""
    _ = tr.gettext
    if kind == "created":
        return _("Lotse hat eine Anfrage an den Helpdesk übergeben.")
    if kind == "taken":
        who = agent or _("Eine Mitarbeiterin / ein Mitarbeiter")
        return _("{agent} hat das Ticket übernommen.").format(agent=who)
    if kind == "user_message":
        return _("Der Nutzer hat geschrieben (das Ticket ist in Bearbeitung):")
    if kind == "agent_message":
        return _("{agent} hat dem Nutzer geantwortet:").format(agent=agent or _("Der Helpdesk"))
    if kind == "handed_back":
        return _("Lotse betreut den Nutzer wieder.")
    if agent:
        return _("Das Ticket wurde geschlossen von {agent}.").format(agent=agent)
    return _("Das Ticket wurde geschlossen.")


def _signature(tr: Translator) -> list[str]:
    return ["", "-- ", tr.gettext("Lotse, der Chat-Assistent für verschlüsselte Mailverbindungen")]


def ticket_body(
    ticket: Ticket,
    kind: str,
    *,
    text: str | None,
    agent: str | None,
    transcript: Sequence[tuple[str, str | None, str, datetime]] | None,
    zone: ZoneInfo,
    tr: Translator,
) -> str:
    """The body: what happened, the message if any, the ticket's fields, the transcript."""
    lines = [_happened(kind, agent, tr)]
    if text:
        lines += ["", *("> " + line for line in text.splitlines())]
    lines += ["", *ticket_fields(ticket, zone, tr)]
    if transcript:
        heading = tr.gettext("Verlauf (Passwörter und ähnliches sind unkenntlich gemacht):")
        lines += ["", heading, ""]
        lines += transcript_lines(transcript, zone, tr)
    lines += _signature(tr)
    return "\n".join(lines) + "\n"


def link_outcome(outcome: LinkOutcome, zone: ZoneInfo, tr: Translator) -> tuple[str, list[str]]:
    """A hand-back link's outcome: what the subject says, and the body's detail lines."""
    _ = tr.gettext
    if outcome.kind == "finished":
        return _("Anleitung abgeschlossen"), [field(_("Anleitung:"), outcome.guide or "–")]
    if outcome.kind == "human":
        tag = subject_tag(outcome.ticket) if outcome.ticket is not None else "–"
        asked = labels.reason_label("requested", tr)
        return f"{asked} {tag}", [field(_("Lotse-Ticket:"), tag)]
    label = _("Verbindungstest:")
    summary = check_line(outcome.last_check, None, tr)
    return f"{label} {summary}", [field(label, check_line(outcome.last_check, zone, tr))]


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
    tr: Translator,
) -> str:
    _ = tr.gettext
    lines = [
        _("Ergebnis eines Lotse-Links (Anleitung {guide}):").format(guide=guide),
        "",
        field(_("Ergebnis:"), outcome),
        field(_("Externe Ref.:"), external_ref or "–"),
        field(_("Link geöffnet:"), local_time(used_at, zone)),
        *details,
        *_signature(tr),
    ]
    return "\n".join(lines) + "\n"
