"""Retention (DSGVO): `lotse purge` and the daily job delete exactly what may go, on SQLite
and on PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, func, select, update

from bot.clock import utcnow
from bot.conversation import ConversationService
from bot.knowledge.base import KnowledgeBase
from bot.storage.tables import Conversation, Message, OutgoingMail, Ticket, TicketMessage, User
from bot.tickets.models import TicketEvent
from bot.tickets.records import queued_mails
from bot.tickets.retention import WAITING_CLOSE_DAYS, run_purge
from bot.tickets.service import TicketService
from tests.support import REPO, Chat, UserInbox, open_app


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, sqlite_url: str) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield sqlite_url
    else:
        yield request.getfixturevalue("postgres_url")


@pytest.fixture
async def served(
    database_url: str, knowledge: KnowledgeBase
) -> AsyncIterator[tuple[ConversationService, TicketService]]:
    app = await open_app(database_url, knowledge, tickets=True)
    service, tickets = app.service, app.tickets
    tickets.register_user_sender("test", UserInbox().send)
    yield service, tickets
    await service.close()


async def age(service: ConversationService, user: str, days: int) -> None:
    """Make the user's conversation `days` old, as if nothing was written since."""
    then = utcnow() - timedelta(days=days)

    def work(conn: Connection) -> None:
        ids = select(Conversation.id).join(User).where(User.external_id == user)
        conn.execute(
            update(Message).where(Message.conversation_id.in_(ids)).values(created_at=then)
        )
        conn.execute(update(Conversation).where(Conversation.id.in_(ids)).values(updated_at=then))
        conn.execute(update(User).where(User.external_id == user).values(created_at=then))

    await service.store.run(work)


async def close_days_ago(service: ConversationService, number: int, days: int) -> None:
    then = utcnow() - timedelta(days=days)
    await service.store.run(
        lambda conn: conn.execute(update(Ticket).where(Ticket.id == number).values(closed_at=then))
    )


async def ticket_quiet_for(service: ConversationService, number: int, days: int) -> None:
    """No message on the ticket (and no change) for `days`."""
    then = utcnow() - timedelta(days=days)

    def work(conn: Connection) -> None:
        conn.execute(update(Ticket).where(Ticket.id == number).values(created_at=then))
        conn.execute(
            update(TicketMessage).where(TicketMessage.ticket_id == number).values(created_at=then)
        )

    await service.store.run(work)


async def users(service: ConversationService) -> list[str]:
    query = select(User.external_id).order_by(User.external_id)
    return await service.store.run(lambda conn: list(conn.execute(query).scalars()))


async def count(service: ConversationService, table: type) -> int:
    query = select(func.count()).select_from(table)
    return int(await service.store.run(lambda conn: conn.execute(query).scalar_one()))


async def test_purge_deletes_old_conversations_without_tickets_and_old_closed_transcripts(
    served: tuple[ConversationService, TicketService],
) -> None:
    service, tickets = served
    for user in ("alt", "neu", "offen", "erledigt-alt", "erledigt-neu"):
        chat = Chat(service, user=user)
        await chat.say("Thunderbird 60")
        if user != "alt" and user != "neu":
            await chat.command("mensch")
    # Tickets: 1 offen (active), 2 erledigt-alt, 3 erledigt-neu.
    await tickets.close(2, "Petra")
    await tickets.close(3, "Petra")
    await close_days_ago(service, 2, 200)
    await close_days_ago(service, 3, 10)
    for user in ("alt", "offen", "erledigt-alt", "erledigt-neu"):
        await age(service, user, 40)
    messages_before = await count(service, TicketMessage)

    report = await run_purge(service.store, retention_days=30, ticket_retention_days=180)

    assert await users(service) == ["erledigt-neu", "neu", "offen"]
    assert (report.users, report.ticket_transcripts) == (2, 1)
    assert report.messages > 0
    purged = await tickets.get(2)
    assert purged is not None
    assert (purged.status, purged.user, purged.reason, purged.program) == (
        "closed",
        "",
        "requested",
        "thunderbird",
    )
    assert await tickets.transcript(2) == []
    assert await tickets.transcript(3) != [] and await tickets.transcript(1) != []
    assert await count(service, TicketMessage) == messages_before - report.ticket_messages
    # A second run finds nothing more.
    again = await run_purge(service.store, retention_days=30, ticket_retention_days=180)
    assert (again.users, again.ticket_transcripts, again.messages) == (0, 0, 0)


def lotse(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LOTSE_DATABASE_URL": url, "LOTSE_RETENTION_DAYS": "30"}
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
    )


async def test_agents_list_show_and_close_tickets_and_admins_purge_from_the_command_line(
    tmp_path: Path, knowledge: KnowledgeBase
) -> None:
    url = f"sqlite:///{tmp_path / 'lotse.sqlite3'}"
    service = (await open_app(url, knowledge, tickets=True)).service
    chat = Chat(service, user="anna", channel="telegram")
    await chat.say("Thunderbird 60")
    await chat.command("mensch")
    await Chat(service, user="bert").command("mensch")
    await age(service, "bert", 5)
    await service.close()

    listed = lotse(url, "tickets", "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("#1     new") and "thunderbird" in lines[0]
    as_json = lotse(url, "tickets", "list", "--status", "new", "--json")
    assert [line.count('"number"') for line in as_json.stdout.splitlines()] == [1, 1]

    shown = lotse(url, "tickets", "show", "1")
    assert "Ticket:          Lotse#1" in shown.stdout
    assert "Kanal:           telegram (Nutzer-ID anna)" in shown.stdout
    assert "Nutzer:\n    Thunderbird" in shown.stdout

    closed = lotse(url, "tickets", "close", "1")
    assert closed.stdout.strip() == "Ticket Nr. 1 ist geschlossen."
    again = lotse(url, "tickets", "close", "1")
    assert again.returncode == 1 and "bereits geschlossen" in again.stderr
    missing = lotse(url, "tickets", "show", "99")
    assert missing.returncode == 1 and "Ein Ticket Nr. 99 gibt es nicht." in missing.stderr
    assert "closed" in lotse(url, "tickets", "list", "--status", "closed").stdout

    purged = lotse(url, "purge")
    assert purged.returncode == 0, purged.stderr
    assert "Gespräche ohne Ticket gelöscht: 0" in purged.stdout


async def test_tickets_nobody_moves_are_closed_with_a_mail_and_then_purged_like_any_other(
    served: tuple[ConversationService, TicketService],
) -> None:
    service, tickets = served
    for user in ("wartet-lange", "wartet-kurz", "neu-lange", "neu-kurz"):
        await Chat(service, user=user).command("mensch")
    for number in (1, 2):
        await tickets.take(number, "Petra")
        await tickets.hand_back(number, "Petra", None)
    await ticket_quiet_for(service, 1, WAITING_CLOSE_DAYS + 1)
    await ticket_quiet_for(service, 2, WAITING_CLOSE_DAYS - 1)
    await ticket_quiet_for(service, 3, 181)
    await ticket_quiet_for(service, 4, 100)
    closed_events: list[int] = []

    async def record(event: TicketEvent) -> None:
        if event.kind == "closed":
            closed_events.append(event.ticket.number)

    tickets.on_event(record)
    mails_before = await service.store.run(queued_mails)

    report = await run_purge(
        service.store, retention_days=30, ticket_retention_days=180, tickets=tickets
    )

    assert report.closed_tickets == 2 and sorted(closed_events) == [1, 3]
    assert [t.status for t in await tickets.listing()] == ["closed", "waiting", "closed", "new"]
    assert await service.store.run(queued_mails) == mails_before + 2
    query = select(OutgoingMail.body).order_by(OutgoingMail.id.desc()).limit(2)
    bodies = await service.store.run(lambda conn: list(conn.execute(query).scalars()))
    assert all("Automatisch geschlossen" in body for body in bodies)


async def test_ticket_mail_that_was_never_delivered_goes_after_the_ticket_retention(
    served: tuple[ConversationService, TicketService],
) -> None:
    service, _tickets = served
    await Chat(service, user="alt").command("mensch")
    await service.store.run(
        lambda conn: conn.execute(
            update(OutgoingMail).values(created_at=utcnow() - timedelta(days=181))
        )
    )
    await Chat(service, user="neu").command("mensch")
    report = await run_purge(service.store, retention_days=30, ticket_retention_days=180)
    assert report.mails == 1 and await service.store.run(queued_mails) == 1
