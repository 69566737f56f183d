"""How a ticket's reason, status and last connection check read, in one place for the ticket
mail and the agents' cards (each in its reader's language, through gettext)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.i18n import Translator

__all__ = ["CHECK_SYMBOLS", "check_summary", "local_time", "reason_label", "status_label"]

CHECK_SYMBOLS = {"ok": "✓", "warning": "!", "error": "✗"}


def reason_label(reason: str, tr: Translator) -> str:
    _ = tr.gettext
    labels = {
        "requested": _("Nutzer bittet um einen Menschen"),
        "stuck": _("Nutzer kommt bei einem Schritt nicht weiter"),
        "unknown_program": _("Mailprogramm ohne Anleitung"),
        "server_error": _("Verbindungstest zeigt einen Serverfehler"),
    }
    return labels.get(reason, reason)


def status_label(status: str, tr: Translator) -> str:
    _ = tr.gettext
    labels = {
        "new": _("neu"),
        "open": _("in Bearbeitung"),
        "waiting": _("zurück bei Lotse"),
        "closed": _("geschlossen"),
    }
    return labels.get(status, status)


def local_time(value: datetime | None, zone: ZoneInfo) -> str:
    """A moment as the helpdesk reads it: "05.03.2025 14:07" in its time zone."""
    return value.astimezone(zone).strftime("%d.%m.%Y %H:%M") if value is not None else "–"


def check_summary(report: dict[str, Any] | None, tr: Translator, zone: ZoneInfo | None) -> str:
    """The last connection check in one line: overall, each port with ✓ ! ✗, and (with a
    zone) when it ran in local time."""
    _ = tr.gettext
    if not report:
        return _("nicht durchgeführt")
    overall = {"ok": _("in Ordnung"), "warning": _("Warnungen"), "error": _("Fehler")}
    summary = overall.get(str(report.get("overall")), str(report.get("overall", "?")))
    ports = [
        f"{str(endpoint.get('protocol', '?')).upper()} {endpoint.get('port', '?')} "
        f"{CHECK_SYMBOLS.get(str(endpoint.get('status')), '?')}"
        for endpoint in report.get("endpoints", [])
        if isinstance(endpoint, dict)
    ]
    line = f"{summary} ({', '.join(ports)})" if ports else summary
    started = _started(report.get("started"))
    if zone is not None and started is not None:
        line += ", " + local_time(started, zone)
    return line


def _started(value: object) -> datetime | None:
    """The check's start as saved (ISO 8601, UTC); None when missing or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        started = datetime.fromisoformat(value)
    except ValueError:
        return None
    return started if started.tzinfo is not None else None
