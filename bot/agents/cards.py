"""What agents see in their chat: ticket cards, relayed messages, status lines, the help and
the list of open tickets, as German text (gettext) with the actions a card offers.

Pure functions, no I/O: `desk.py` decides when to show them, the platform glue renders the
actions as buttons (Telegram) or as the commands to type (Matrix, which has no buttons).
Every message about a ticket starts with "#N" (the card with "Ticket #N"); which ticket a reply
answers is recorded when the message is posted (`card_refs`), the start of the text is read
only for cards and relays posted before that record existed (`ticket_named_at_start`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.agents.commands import TAP_BACK, TAP_CLOSE, TAP_TAKE, tap_payload
from bot.i18n import Translator
from bot.tickets import labels
from bot.tickets.models import Ticket

__all__ = [
    "CHAT_LABELS",
    "MAX_RELAYED",
    "DeskAction",
    "GuideTitle",
    "Notice",
    "agent_answer",
    "card",
    "card_actions",
    "duration",
    "help_text",
    "program_line",
    "status_change",
    "ticket_list",
    "ticket_named_at_start",
    "user_message",
    "waiting_line",
]

MAX_RELAYED = 3500  # characters of a user's message in one relay (Telegram allows 4096)
CHAT_LABELS = {"telegram": "Telegram", "matrix": "Matrix"}  # product names, not translated


@dataclass(frozen=True)
class DeskAction:
    """One action on a card: a button label and payload, and the command that does the same."""

    label: str
    payload: str
    command: str


@dataclass(frozen=True)
class Notice:
    """A message for the agents' chat."""

    text: str
    actions: tuple[DeskAction, ...] = ()


GuideTitle = Callable[[str], str | None]


def card(
    ticket: Ticket,
    now: datetime,
    tr: Translator,
    guide_title: GuideTitle = lambda _id: None,
    closed_by: str | None = None,
) -> Notice:
    """A ticket as a card: what happened, where the user stands, who has it, what to do."""
    _ = tr.gettext
    lines = [
        _("Ticket #{number} · {status}").format(
            number=ticket.number, status=labels.status_label(ticket.status, tr)
        ),
        _("Anlass: {reason}").format(reason=labels.reason_label(ticket.reason, tr)),
        _("Programm: {program}").format(program=program_line(ticket, tr, guide_title)),
        _("Verbindungstest: {result}").format(
            result=labels.check_summary(ticket.last_check, tr, None)
        ),
        _("Kanal: {channel}, Sprache: {locale}").format(
            channel=ticket.channel, locale=tr.name_of_language(ticket.locale)
        ),
        waiting_line(ticket, now, tr),
    ]
    if ticket.affected > 1:  # an incident: the same server error in other users' checks
        lines.insert(
            2,
            _("Betrifft {count} Nutzer (gleicher Fehler beim Verbindungstest).").format(
                count=ticket.affected
            ),
        )
    if ticket.status == "closed":
        closer = closed_by or ticket.assignee
        lines.append(
            _("Geschlossen von {agent}.").format(agent=closer) if closer else _("Geschlossen.")
        )
        return Notice("\n".join(lines))
    if ticket.assignee:
        lines.append(_("Übernommen von {agent}.").format(agent=ticket.assignee))
    lines.append(
        _("Antworten Sie auf diese Nachricht, um dem Nutzer zu schreiben.")
        if ticket.status != "waiting"
        else _("Lotse betreut den Nutzer wieder; eine Antwort hier übernimmt das Ticket.")
    )
    return Notice("\n".join(lines), card_actions(ticket, tr))


def card_actions(ticket: Ticket, tr: Translator) -> tuple[DeskAction, ...]:
    _ = tr.gettext
    number = ticket.number
    take = DeskAction(_("Übernehmen"), tap_payload(TAP_TAKE, number), f"/nehmen {number}")
    back = DeskAction(
        _("An Lotse zurückgeben"), tap_payload(TAP_BACK, number), f"/anleitung {number}"
    )
    close = DeskAction(_("Schließen"), tap_payload(TAP_CLOSE, number), f"/schliessen {number}")
    if ticket.status == "open":
        return (back, close)
    return (take, back, close)


def program_line(ticket: Ticket, tr: Translator, guide_title: GuideTitle) -> str:
    _ = tr.gettext
    if ticket.guide is None and ticket.program is None:
        return _("noch nicht bekannt")
    name = (guide_title(ticket.guide) if ticket.guide else None) or ticket.program or "?"
    parts = [name]
    if ticket.version:
        parts.append(_("Version {version}").format(version=ticket.version))
    if ticket.guide and ticket.step is not None:
        parts.append(
            _("Anleitung {guide}, Schritt {step}").format(guide=ticket.guide, step=ticket.step)
        )
    elif ticket.guide:
        parts.append(_("Anleitung {guide}").format(guide=ticket.guide))
    return ", ".join(parts)


def waiting_line(ticket: Ticket, now: datetime, tr: Translator) -> str:
    _ = tr.gettext
    if ticket.first_answer_at is not None:
        return _("Erste Antwort nach {duration}.").format(
            duration=duration(ticket.first_answer_at - ticket.created_at, tr)
        )
    if ticket.closed_at is not None:
        return _("Ohne Antwort geschlossen.")
    return _("Wartet seit {duration} auf eine Antwort.").format(
        duration=duration(now - ticket.created_at, tr)
    )


def duration(span: timedelta, tr: Translator) -> str:
    """ "3 Min.", "2 Std. 5 Min.", "3 Tagen": short, for a card."""
    _ = tr.gettext
    minutes = max(0, int(span.total_seconds() // 60))
    if minutes < 1:
        return _("weniger als 1 Min.")
    if minutes < 60:
        return _("{minutes} Min.").format(minutes=minutes)
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return _("{hours} Std. {minutes} Min.").format(hours=hours, minutes=minutes)
    return _("{days} Tagen").format(days=hours // 24)


def user_message(number: int, text: str, tr: Translator) -> Notice:
    """What the user wrote while an agent has the ticket (already redacted by the service)."""
    shown = text if len(text) <= MAX_RELAYED else text[:MAX_RELAYED] + " […]"
    return Notice(tr.gettext("#{number} Nutzer: {text}").format(number=number, text=shown))


def agent_answer(number: int, agent: str, chat: str | None, text: str, tr: Translator) -> Notice:
    """An agent's answer to the user, for the agents in the other chats (already redacted).

    `chat`: the agents' chat it was written in ("telegram"), None when it came from elsewhere.
    """
    _ = tr.gettext
    shown = text if len(text) <= MAX_RELAYED else text[:MAX_RELAYED] + " […]"
    if chat is None:
        line = _("#{number} Antwort von {agent}: {text}")
        return Notice(line.format(number=number, agent=agent, text=shown))
    line = _("#{number} Antwort von {agent} über {chat}: {text}")
    label = CHAT_LABELS.get(chat, chat)
    return Notice(line.format(number=number, agent=agent, chat=label, text=shown))


def status_change(kind: str, ticket: Ticket, agent: str | None, tr: Translator) -> Notice | None:
    """A short line under the card when someone acts on it (the card is updated too).

    `agent`: who did it; None when the user did (`/bot` hands the ticket back to Lotse).
    """
    _ = tr.gettext
    if agent is None:
        if kind != "handed_back":
            return None
        return Notice(
            _("#{number}: Der Nutzer ist mit /bot zu Lotse zurückgekehrt.").format(
                number=ticket.number
            )
        )
    texts = {
        "taken": _("#{number} übernommen von {agent}."),
        "handed_back": _("#{number} von {agent} an Lotse zurückgegeben."),
        "closed": _("#{number} geschlossen von {agent}."),
    }
    if kind not in texts:
        return None
    text = texts[kind].format(number=ticket.number, agent=agent)
    if kind == "handed_back" and ticket.guide:
        text += " " + _("Weiter mit der Anleitung {guide}.").format(guide=ticket.guide)
    return Notice(text)


def ticket_list(tickets: Sequence[Ticket], now: datetime, tr: Translator) -> Notice:
    """`/tickets`: the tickets not closed, oldest first, one line each."""
    _ = tr.gettext
    waiting = sorted((t for t in tickets if t.status != "closed"), key=lambda t: t.number)
    if not waiting:
        return Notice(_("Keine offenen Tickets."))
    lines = [_("Offene Tickets:")]
    for ticket in waiting:
        who = ticket.assignee or _("niemand")
        lines.append(
            _("#{number} · {status} · {reason} · seit {duration} · bei {agent}").format(
                number=ticket.number,
                status=labels.status_label(ticket.status, tr),
                reason=labels.reason_label(ticket.reason, tr),
                duration=duration(now - ticket.created_at, tr),
                agent=who,
            )
        )
    return Notice("\n".join(lines))


def help_text(tr: Translator) -> Notice:
    _ = tr.gettext
    return Notice(
        "\n".join(
            [
                _("So bearbeiten Sie Tickets hier:"),
                _("Auf eine Ticketkarte oder Nutzernachricht antworten: an den Nutzer senden"),
                _("/antwort 12 Text – dem Nutzer von Ticket 12 schreiben"),
                _("/nehmen 12 – Ticket 12 übernehmen (Lotse schweigt dann)"),
                _("/anleitung 12 thunderbird – zurück an Lotse, am Anfang dieser Anleitung"),
                _("/anleitung 12 – zurück an Lotse, dort weiter, wo der Nutzer war"),
                _("/schliessen 12 – Ticket 12 schließen"),
                _("/tickets – offene Tickets anzeigen"),
                _("In Matrix geht statt / auch ! (zum Beispiel !antwort 12 Text)."),
            ]
        )
    )


def ticket_named_at_start(text: str | None, tr: Translator) -> int | None:
    """The ticket a card or relayed message of the bot names at its very start ("Ticket #12 ·
    …", "#12 Nutzer: …", "#12 Antwort von …"), for those posted before their ids were recorded;
    None for any other text, also when it names tickets further on (the list of tickets)."""
    if not text:
        return None
    _ = tr.gettext
    templates = (
        _("Ticket #{number} · {status}"),
        _("#{number} Nutzer: {text}"),
        _("#{number} Antwort von {agent}: {text}"),
    )
    for template in templates:
        found = _start_pattern(template).match(text)
        if found is not None:
            return int(found.group(1))
    return None


def _start_pattern(template: str) -> re.Pattern[str]:
    """ "#{number} Nutzer: {text}" -> the regular expression for "#12 Nutzer: " at the start."""
    before, _, after = template.partition("{number}")
    fixed_after = after.split("{", 1)[0]
    return re.compile(re.escape(before) + r"(\d{1,9})" + re.escape(fixed_after))
