"""Plain-text renderings of knowledge for replies: a guide's step, the server settings, an FAQ."""

from __future__ import annotations

from bot.i18n import Translator
from bot.knowledge.base import KnowledgeBase, SettingsCard
from bot.knowledge.models import Endpoint, Guide, StepItem

__all__ = ["card_text", "guide_text", "helpdesk_text", "settings_text", "step_text"]


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
    lines = [_("Die Einstellungen für {server}:").format(server=knowledge.server.name)]
    lines += _endpoint_lines(knowledge, knowledge.settings_card_endpoints(protocol), tr)
    lines.append("")
    lines.append(_("Benutzername und Passwort bleiben wie bisher."))
    return "\n".join(lines)


def _endpoint_lines(
    knowledge: KnowledgeBase, endpoints: dict[str, list[Endpoint]], tr: Translator
) -> list[str]:
    _ = tr.gettext
    labels = {
        "imap": _("Posteingangsserver (IMAP)"),
        "pop3": _("Posteingangsserver (POP3)"),
        "smtp": _("Postausgangsserver (SMTP)"),
    }
    lines: list[str] = []
    for name, found in endpoints.items():
        hosts = sorted({e.host or knowledge.server.host for e in found})
        lines.append("")
        lines.append(f"{labels[name]}: {', '.join(hosts)}")
        lines.extend("  • " + _endpoint_text(e, tr) for e in found)
    return lines


def card_text(
    knowledge: KnowledgeBase, card: SettingsCard, tr: Translator, *, intro: bool = True
) -> str:
    """A settings card: what a program without a guide needs, in the user's language — notes
    (a discontinued program says so first), server, ports and security per protocol, the login
    name with an example, and that the password stays the same."""
    _ = tr.gettext
    locale = tr.locale
    name = card.name.get(locale)
    lines: list[str] = []
    if card.discontinued:
        lines += [note.get(locale) for note in card.notes] + [""]
    elif intro:
        lines.append(
            _(
                "Für {program} habe ich keine Schritt-für-Schritt-Anleitung. Tragen Sie in den "
                "Kontoeinstellungen diese Angaben ein:"
            ).format(program=name)
        )
    lines += _endpoint_lines(knowledge, card.endpoints, tr)[0 if intro else 1 :]
    lines.append("")
    if card.login_name == "address":
        login = _("Benutzername: Ihre vollständige E-Mail-Adresse (zum Beispiel {example})")
    else:
        login = _("Benutzername: der Teil Ihrer E-Mail-Adresse vor dem @ (zum Beispiel {example})")
    lines.append(login.format(example=card.login_example))
    if card.password_unchanged:
        lines.append(_("Ihr Passwort bleibt dasselbe – Sie müssen es nicht ändern."))
    if not card.discontinued and card.notes:
        lines += [""] + [note.get(locale) for note in card.notes]
    ways = {
        "autoconfig": _(
            "Wenn Sie ein Konto neu hinzufügen, sucht {program} die Einstellungen selbst "
            "(Autoconfig): Sie geben nur E-Mail-Adresse und Passwort ein. Vergleichen Sie sie "
            "danach mit den Angaben oben."
        ),
        "autodiscover": _(
            "{program} kann die Einstellungen auch selbst suchen (Autodiscover), wenn Sie das "
            "Konto neu hinzufügen. Vergleichen Sie sie danach mit den Angaben oben."
        ),
        "apple-profile": _(
            "Noch einfacher: Ich kann Ihnen ein Profil schicken, das das Konto mit "
            "Verschlüsselung einrichtet."
        ),
    }
    for way in card.setup:
        lines += ["", ways[way].format(program=name)]
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
