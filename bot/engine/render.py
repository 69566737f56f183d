"""Plain-text renderings of knowledge for replies: a guide's step, the server settings, an FAQ."""

from __future__ import annotations

from bot.i18n import Translator
from bot.knowledge.base import KnowledgeBase
from bot.knowledge.models import Endpoint, Guide, StepItem


def step_text(guide: Guide, protocol: str | None, index: int, tr: Translator) -> str:
    _ = tr.gettext
    guide = guide.localized(tr.locale)
    steps = guide.steps_for(protocol)
    step = steps[index]
    header = _("{title} – Schritt {number} von {total}").format(
        title=guide.title, number=tr.number(index + 1), total=tr.number(len(steps))
    )
    lines = [header, "", step.text, *_item_lines(step.items, depth=1)]
    return "\n".join(lines)


def _item_lines(items: list[StepItem], depth: int) -> list[str]:
    lines: list[str] = []
    for item in items:
        lines.append("  " * depth + "• " + item.text)
        lines.extend(_item_lines(item.items, depth + 1))
    return lines


def guide_text(guide: Guide, protocol: str | None, tr: Translator) -> str:
    """The whole guide, step after step, as the bot would show it (for `lotse kb show`)."""
    steps = guide.steps_for(protocol)
    return "\n\n".join(step_text(guide, protocol, i, tr) for i in range(len(steps)))


_SECURITY_LABEL = {"tls": "SSL/TLS", "starttls": "STARTTLS"}


def _endpoint_text(endpoint: Endpoint, tr: Translator) -> str:
    _ = tr.gettext
    security = _SECURITY_LABEL[endpoint.security]
    if endpoint.protocol == "pop3" and endpoint.security == "starttls":
        security = "STARTTLS (STLS)"
    return _("Port {port} mit {security}").format(port=endpoint.port, security=security)


def settings_text(knowledge: KnowledgeBase, protocol: str | None, tr: Translator) -> str:
    """Server, ports and encryption for the user's incoming protocol (both when unknown)."""
    _ = tr.gettext
    server = knowledge.server
    incoming = [protocol] if protocol in ("imap", "pop3") else ["imap", "pop3"]
    labels = {
        "imap": _("Posteingangsserver (IMAP)"),
        "pop3": _("Posteingangsserver (POP3)"),
        "smtp": _("Postausgangsserver (SMTP)"),
    }
    lines = [_("Die Einstellungen für {server}:").format(server=server.name)]
    for name in [*incoming, "smtp"]:
        endpoints = server.endpoints_for(name)
        if not endpoints:
            continue
        hosts = sorted({e.host or server.host for e in endpoints})
        lines.append("")
        lines.append(f"{labels[name]}: {', '.join(hosts)}")
        lines.extend("  • " + _endpoint_text(e, tr) for e in endpoints)
    lines.append("")
    lines.append(_("Benutzername und Passwort bleiben wie bisher."))
    return "\n".join(lines)


def helpdesk_text(knowledge: KnowledgeBase, tr: Translator) -> str:
    _ = tr.gettext
    helpdesk = knowledge.helpdesk
    lines = [
        _("So erreichen Sie {name}:").format(name=helpdesk.name),
        _("E-Mail: {email}").format(email=helpdesk.email),
    ]
    if helpdesk.phone:
        lines.append(_("Telefon: {phone}").format(phone=helpdesk.phone))
    if helpdesk.url:
        lines.append(_("Web: {url}").format(url=helpdesk.url))
    if helpdesk.hours:
        hours = ", ".join(f"{h.days} {h.opens}–{h.closes}" for h in helpdesk.hours)
        lines.append(_("Erreichbar: {hours} Uhr").format(hours=hours))
    return "\n".join(lines)
