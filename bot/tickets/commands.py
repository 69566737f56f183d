"""`lotse tickets`, `lotse handoff-link` and `lotse purge`: the agents' and admins' commands
(room: service; `bot/cli.py` builds the app and hands them its tickets)."""

from __future__ import annotations

import argparse
import json
import sys
from zoneinfo import ZoneInfo

from bot.clock import utcnow
from bot.config import ConfigurationError, Settings
from bot.i18n import Translator
from bot.numbers import ascii_number
from bot.tickets import mail_text, outbox
from bot.tickets.links import (
    MAX_REFERENCE_LENGTH,
    Link,
    reference_problem,
)
from bot.tickets.models import (
    STATUSES,
    Ticket,
    TicketError,
    UserNotReached,
    no_such_ticket,
    unknown_guide,
)
from bot.tickets.records import parked_mails
from bot.tickets.retention import run_purge
from bot.tickets.service import TicketService

__all__ = ["add_commands", "link_instructions", "run"]


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tickets = commands.add_parser("tickets", help="tickets handed over to the helpdesk")
    ticket_commands = tickets.add_subparsers(dest="tickets_command", required=True)
    listing = ticket_commands.add_parser("list", help="list tickets")
    listing.add_argument("--status", choices=STATUSES, default=None)
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    show = ticket_commands.add_parser("show", help="a ticket's fields and transcript")
    show.add_argument("number", type=int)
    show.add_argument("--json", action="store_true")
    close = ticket_commands.add_parser("close", help="close a ticket")
    close.add_argument("number", type=int)
    close.add_argument("--agent", default="cli", help="who closes it (default: cli)")
    mail = ticket_commands.add_parser(
        "mail", help="ticket mail set aside because it cannot be sent as it is (parked)"
    )
    mail.add_argument(
        "--retry", metavar="ID", help="queue parked mail ID again (or all), once the cause is fixed"
    )

    link = commands.add_parser(
        "handoff-link", help="a link that sends a user into a guide (LOTSE_HANDOFF_SECRET)"
    )
    link.add_argument("--guide", required=True, help="guide id, e.g. thunderbird")
    link.add_argument(
        "--ref",
        default=None,
        help=f"your ticket's reference, e.g. Ticket#123 (one line, at most "
        f"{MAX_REFERENCE_LENGTH} characters)",
    )

    commands.add_parser("purge", help="delete what retention allows (LOTSE_RETENTION_DAYS ...)")


async def run(
    settings: Settings, tickets: TicketService, args: argparse.Namespace, tr: Translator
) -> int:
    """Carry out the command; what it prints is in the agents' language `tr`."""
    if args.command == "purge":
        report = await run_purge(
            tickets.store, settings.retention_days, settings.ticket_retention_days, tickets=tickets
        )
        print("\n".join(report.lines(tr)))
        return 0
    try:
        if args.command == "handoff-link":
            return await _handoff_link(settings, tickets, args, tr)
        return await _tickets(tickets, args, tr)
    except TicketError as error:
        print(error.text(tr), file=sys.stderr)
        return 1


async def _tickets(tickets: TicketService, args: argparse.Namespace, tr: Translator) -> int:
    _ = tr.gettext
    if args.tickets_command == "mail":
        return await _parked_mail(tickets, args.retry, tr)
    if args.tickets_command == "list":
        parked = await tickets.store.run(parked_mails)
        if parked:
            print(
                _(
                    "Hinweis: {count} Ticket-Mail(s) geparkt, nicht zustellbar "
                    "(lotse tickets mail)."
                ).format(count=parked),
                file=sys.stderr,
            )
        found = await tickets.listing(args.status)
        for ticket in found:
            print(
                json.dumps(ticket.as_json(), ensure_ascii=False)
                if args.json
                else _line(ticket, _zone(tickets), tr)
            )
        if not found and not args.json:
            print(_("Keine Tickets."))
        return 0
    if args.tickets_command == "show":
        shown = await tickets.get(args.number)
        if shown is None:
            raise no_such_ticket(args.number)
        transcript = await tickets.transcript(args.number)
        if args.json:
            data = shown.as_json()
            data["transcript"] = [
                {"direction": m.direction, "text": m.text, "at": m.created_at.isoformat()}
                for m in transcript
            ]
            print(json.dumps(data, ensure_ascii=False))
            return 0
        zone = _zone(tickets)
        print("\n".join(mail_text.ticket_fields(shown, zone, tr)))
        print()
        lines = [(m.direction, None, m.text, m.created_at) for m in transcript]
        print(
            "\n".join(mail_text.transcript_lines(lines, zone, tr))
            or _("(kein Verlauf gespeichert)")
        )
        return 0
    try:
        ticket = await tickets.close(args.number, args.agent)
    except UserNotReached as warning:  # closed; only the user could not be told from here
        ticket = warning.ticket
        print(warning.text(tr), file=sys.stderr)
    print(_("Ticket Nr. {number} ist geschlossen.").format(number=ticket.number))
    return 0


async def _parked_mail(tickets: TicketService, retry: str | None, tr: Translator) -> int:
    _ = tr.gettext
    store = tickets.store
    if retry is not None:
        mail_id = None if retry == "all" else ascii_number(retry)
        if mail_id is None and retry != "all":
            print(_("--retry: eine Mail-Nummer oder all."), file=sys.stderr)
            return 2
        count = await store.run(outbox.unpark, mail_id, utcnow())
        print(_("{count} Ticket-Mail(s) wieder in der Warteschlange.").format(count=count))
        return 0 if count else 1
    found = await store.run(outbox.parked)
    for mail in found:
        created = mail_text.local_time(mail.created_at, _zone(tickets))
        print(f"Mail {mail.id}  {created}  {outbox.header_text(mail.subject)}")
        print(f"    {outbox.header_text(mail.error)}")
    if not found:
        print(_("Keine geparkten Ticket-Mails."))
    return 0


def _zone(tickets: TicketService) -> ZoneInfo:
    return ZoneInfo(tickets.knowledge().helpdesk.timezone)


def _line(ticket: Ticket, zone: ZoneInfo, tr: Translator) -> str:
    program = f"{ticket.program or '–'} {ticket.version or ''}".strip()
    step = " " + tr.gettext("Schritt {step}").format(step=ticket.step) if ticket.step else ""
    return (
        f"#{ticket.number:<5} {ticket.status:<8} {mail_text.local_time(ticket.created_at, zone)}  "
        f"{ticket.reason:<15} {ticket.channel:<9} {program}{step}"
        + (f"  ({ticket.assignee})" if ticket.assignee else "")
    )


async def _handoff_link(
    settings: Settings, tickets: TicketService, args: argparse.Namespace, tr: Translator
) -> int:
    if tickets.links is None:
        raise ConfigurationError(
            "LOTSE_HANDOFF_SECRET is not set: hand-back links need a secret shared by the bot "
            "(e.g. `openssl rand -hex 32`)."
        )
    # Refused as a usage error (exit 2, with the reason) before anything is stored.
    problem = reference_problem(args.ref) if args.ref is not None else None
    if problem is not None:
        print(problem.translated(tr), file=sys.stderr)
        return 2
    knowledge = tickets.knowledge()
    if args.guide not in knowledge.guides:
        raise unknown_guide(args.guide, knowledge.guides)
    link = await tickets.links.create(args.guide, args.ref)
    zone = ZoneInfo(knowledge.helpdesk.timezone)
    print(link_instructions(link, settings.telegram_bot_username, zone, tr))
    return 0


def link_instructions(
    link: Link, telegram_username: str | None, zone: ZoneInfo, tr: Translator
) -> str:
    _ = tr.gettext
    lines = []
    if telegram_username:
        lines.append(f"Telegram: https://t.me/{telegram_username}?start={link.token}")
    lines.append(_("Matrix: dem Lotse-Bot „/start {token}“ schreiben").format(token=link.token))
    expires = mail_text.local_time(link.expires_at, zone)
    if link.external_ref:
        validity = _(
            "Gültig bis {expires} (einmal verwendbar), Anleitung {guide}, Referenz {reference}"
        ).format(expires=expires, guide=link.guide, reference=link.external_ref)
    else:
        validity = _("Gültig bis {expires} (einmal verwendbar), Anleitung {guide}").format(
            expires=expires, guide=link.guide
        )
    lines.append(validity)
    return "\n".join(lines)
