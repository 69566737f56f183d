"""`lotse tickets`, `lotse handoff-link` and `lotse purge`: the agents' and admins' commands
(room: service; `bot/cli.py` builds the app and hands them its tickets)."""

from __future__ import annotations

import argparse
import json
import sys
from zoneinfo import ZoneInfo

from bot.clock import utcnow
from bot.config import ConfigurationError, Settings
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
        type=_reference,
        help=f"your ticket's reference, e.g. Ticket#123 (one line, at most "
        f"{MAX_REFERENCE_LENGTH} characters)",
    )

    commands.add_parser("purge", help="delete what retention allows (LOTSE_RETENTION_DAYS ...)")


def _reference(value: str) -> str:
    """`--ref`, refused by argparse (exit 2, with the reason) before anything is stored."""
    problem = reference_problem(value)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return value


async def run(settings: Settings, tickets: TicketService, args: argparse.Namespace) -> int:
    if args.command == "purge":
        report = await run_purge(
            tickets.store, settings.retention_days, settings.ticket_retention_days, tickets=tickets
        )
        print("\n".join(report.lines()))
        return 0
    if args.command == "handoff-link":
        return await _handoff_link(settings, tickets, args)
    try:
        return await _tickets(tickets, args)
    except TicketError as error:
        print(error, file=sys.stderr)
        return 1


async def _tickets(tickets: TicketService, args: argparse.Namespace) -> int:
    if args.tickets_command == "mail":
        return await _parked_mail(tickets, args.retry)
    if args.tickets_command == "list":
        parked = await tickets.store.run(parked_mails)
        if parked:
            print(
                f"Hinweis: {parked} Ticket-Mail(s) geparkt, nicht zustellbar (lotse tickets mail).",
                file=sys.stderr,
            )
        found = await tickets.listing(args.status)
        for ticket in found:
            print(
                json.dumps(ticket.as_json(), ensure_ascii=False)
                if args.json
                else _line(ticket, _zone(tickets))
            )
        if not found and not args.json:
            print("Keine Tickets.")
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
        print("\n".join(mail_text.ticket_fields(shown, zone)))
        print()
        lines = [(m.direction, None, m.text, m.created_at) for m in transcript]
        print("\n".join(mail_text.transcript_lines(lines, zone)) or "(kein Verlauf gespeichert)")
        return 0
    try:
        ticket = await tickets.close(args.number, args.agent)
    except UserNotReached as warning:  # closed; only the user could not be told from here
        ticket = warning.ticket
        print(warning, file=sys.stderr)
    print(f"Ticket Nr. {ticket.number} ist geschlossen.")
    return 0


async def _parked_mail(tickets: TicketService, retry: str | None) -> int:
    store = tickets.store
    if retry is not None:
        mail_id = None if retry == "all" else ascii_number(retry)
        if mail_id is None and retry != "all":
            print("--retry: eine Mail-Nummer oder all.", file=sys.stderr)
            return 2
        count = await store.run(outbox.unpark, mail_id, utcnow())
        print(f"{count} Ticket-Mail(s) wieder in der Warteschlange.")
        return 0 if count else 1
    found = await store.run(outbox.parked)
    for mail in found:
        created = mail_text.local_time(mail.created_at, _zone(tickets))
        print(f"Mail {mail.id}  {created}  {outbox.header_text(mail.subject)}")
        print(f"    {outbox.header_text(mail.error)}")
    if not found:
        print("Keine geparkten Ticket-Mails.")
    return 0


def _zone(tickets: TicketService) -> ZoneInfo:
    return ZoneInfo(tickets.knowledge().helpdesk.timezone)


def _line(ticket: Ticket, zone: ZoneInfo) -> str:
    program = f"{ticket.program or '–'} {ticket.version or ''}".strip()
    step = f" Schritt {ticket.step}" if ticket.step else ""
    return (
        f"#{ticket.number:<5} {ticket.status:<8} {mail_text.local_time(ticket.created_at, zone)}  "
        f"{ticket.reason:<15} {ticket.channel:<9} {program}{step}"
        + (f"  ({ticket.assignee})" if ticket.assignee else "")
    )


async def _handoff_link(
    settings: Settings, tickets: TicketService, args: argparse.Namespace
) -> int:
    if tickets.links is None:
        raise ConfigurationError(
            "LOTSE_HANDOFF_SECRET is not set: hand-back links need a secret shared by the bot "
            "(e.g. `openssl rand -hex 32`)."
        )
    knowledge = tickets.knowledge()
    if args.guide not in knowledge.guides:
        print(unknown_guide(args.guide, knowledge.guides), file=sys.stderr)
        return 1
    link = await tickets.links.create(args.guide, args.ref)
    zone = ZoneInfo(knowledge.helpdesk.timezone)
    print(link_instructions(link, settings.telegram_bot_username, zone))
    return 0


def link_instructions(link: Link, telegram_username: str | None, zone: ZoneInfo) -> str:
    lines = []
    if telegram_username:
        lines.append(f"Telegram: https://t.me/{telegram_username}?start={link.token}")
    lines.append(f"Matrix: dem Lotse-Bot „/start {link.token}“ schreiben")
    lines.append(
        f"Gültig bis {mail_text.local_time(link.expires_at, zone)} (einmal verwendbar), "
        f"Anleitung {link.guide}" + (f", Referenz {link.external_ref}" if link.external_ref else "")
    )
    return "\n".join(lines)
