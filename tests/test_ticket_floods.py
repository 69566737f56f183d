"""Floods and outages make one ticket, not fifty: a user who repeats a request, deletes their
data and asks again, or writes 45 messages in a row to an agent, and 50 users whose check finds
the same server error (real loopback mail servers, the real Postfix helpdesk mailbox)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.app import App
from bot.check.handler import CheckActionHandler
from bot.conversation import ConversationService
from bot.engine.decision import RunCheck
from bot.knowledge.base import KnowledgeBase
from bot.storage.store import Store
from bot.tickets import records
from bot.tickets.models import TicketEvent
from bot.tickets.outbox import deliver_queue
from bot.tickets.service import TicketService
from bot.tickets.smtp import SmtpSender
from tests.servers.mail import LOCAL, Mailbox, MailServers
from tests.support import MAIL_FROM, Chat, StepClock, UserInbox, open_app

LIMITED = "Sie haben in kurzer Zeit schon mehrere Anfragen an den Helpdesk gestellt"


class Events:
    def __init__(self, tickets: TicketService) -> None:
        self.seen: list[TicketEvent] = []
        tickets.on_event(self.record)

    async def record(self, event: TicketEvent) -> None:
        self.seen.append(event)

    def count(self, kind: str) -> int:
        return sum(1 for event in self.seen if event.kind == kind)


async def with_tickets(
    url: str, knowledge: KnowledgeBase, clock: StepClock, **settings: Any
) -> App:
    """Tickets that mail the helpdesk queue, on `clock` (no hand-back links)."""
    return await open_app(
        url, knowledge, tickets=True, clock=clock, handoff_secret=None, **settings
    )


@pytest.fixture
async def clocked(
    sqlite_url: str, knowledge: KnowledgeBase
) -> AsyncIterator[tuple[ConversationService, TicketService, StepClock]]:
    clock = StepClock()
    app = await with_tickets(sqlite_url, knowledge, clock)
    yield app.service, app.tickets, clock
    await app.close()


async def delete_my_data(chat: Chat) -> None:
    await chat.command("loeschen")
    await chat.say("Ja")
    assert "gelöscht" in chat.text


async def test_a_second_mensch_refers_to_the_open_ticket_and_makes_no_new_card_or_mail(
    clocked: tuple[ConversationService, TicketService, StepClock],
) -> None:
    service, tickets, _clock = clocked
    events = Events(tickets)
    chat = Chat(service)
    await chat.say("Thunderbird 60")
    await chat.command("mensch")
    assert "Nummer 1" in chat.text
    for again in ("/mensch", "Ich möchte einen Menschen sprechen", "/mensch"):
        if again == "/mensch":
            await chat.command("mensch")
        else:
            await chat.say(again)
        assert "Ihre Anfrage Nr. 1 liegt dem Helpdesk bereits vor" in chat.text
    assert len(await tickets.listing()) == 1
    assert events.count("created") == 1  # one card
    assert await service.store.run(records.queued_mails) == 1  # one mail


async def test_asking_deleting_and_asking_again_opens_at_most_three_tickets_an_hour(
    clocked: tuple[ConversationService, TicketService, StepClock],
) -> None:
    service, tickets, clock = clocked
    events = Events(tickets)
    chat = Chat(service)
    for number in (1, 2, 3):
        await chat.command("mensch")
        assert f"Nummer {number}" in chat.text
        await delete_my_data(chat)
        clock.advance(60)
    mails = await service.store.run(records.queued_mails)
    await chat.command("mensch")
    assert LIMITED in chat.text
    assert "E-Mail:" in chat.text  # where to turn instead
    await chat.say("Ja")  # nothing to confirm: no ticket either
    assert len(await tickets.listing()) == 3
    assert events.count("created") == 3
    assert await service.store.run(records.queued_mails) == mails  # no mail for the refusal

    clock.advance(records.TICKET_LIMIT_WINDOW.total_seconds())
    await chat.command("mensch")
    assert "Nummer 4" in chat.text


async def test_a_user_who_sends_45_messages_within_seconds_to_a_taken_ticket_makes_one_mail(
    clocked: tuple[ConversationService, TicketService, StepClock], helpdesk_mailbox: Mailbox
) -> None:
    service, tickets, clock = clocked
    tickets.register_user_sender("test", UserInbox().send)
    chat = Chat(service)
    await chat.say("Thunderbird 60")
    await chat.command("mensch")
    await tickets.take(1, "Petra")
    for number in range(1, 46):
        await chat.say(f"Nachricht {number}: es geht immer noch nicht")
        clock.advance(0.05)
    events_in_transcript = [m.text for m in await tickets.transcript(1) if m.direction == "in"]
    assert "Nachricht 45: es geht immer noch nicht" in events_in_transcript

    sender = SmtpSender(helpdesk_mailbox.url("smtp"), helpdesk_mailbox.ca)
    # While the window is open the relay mail is held back; then it goes out as one.
    report = await deliver_queue(service.store, sender, MAIL_FROM, now=clock)
    assert (report.sent, report.waiting) == (2, 1)
    clock.advance(records.MERGE_WINDOW.total_seconds())
    report = await deliver_queue(service.store, sender, MAIL_FROM, now=clock)
    assert (report.sent, report.waiting) == (1, 0)
    mails = await helpdesk_mailbox.wait_for(3)
    relayed = [m for m in mails if "Nachricht des Nutzers" in str(m["Subject"])]
    assert len(relayed) == 1
    text = relayed[0].get_body(("plain",))
    assert text is not None
    content = str(text.get_content())
    assert "Nachricht 1: es geht" in content and "Nachricht 45: es geht" in content

    # A message after the window makes the next mail.
    clock.advance(10)
    await chat.say("Jetzt noch etwas")
    assert await service.store.run(records.queued_mails) == 1


# --- a server error many users see ---------------------------------------------------------


@pytest.fixture
async def broken_server(
    sqlite_url: str, knowledge: KnowledgeBase, mail_servers: MailServers
) -> AsyncIterator[tuple[ConversationService, TicketService, StepClock]]:
    # IMAPS with an expired certificate: the check reports an error for the server.
    server = mail_servers.server(("imap", mail_servers.postfix.expired, "tls", LOCAL))
    ours = dataclasses.replace(knowledge, server=server)
    clock = StepClock()
    app = await with_tickets(
        sqlite_url, ours, clock, check=True, check_timeout=5.0, check_ca_file=mail_servers.pki.ca
    )
    yield app.service, app.tickets, clock
    await app.close()


async def test_the_2nd_to_50th_users_whose_check_finds_the_same_server_error_join_one_incident(
    broken_server: tuple[ConversationService, TicketService, StepClock],
) -> None:
    service, tickets, clock = broken_server
    events = Events(tickets)
    first = Chat(service, user="user-1")
    await first.command("pruefen")
    assert "ich habe den Helpdesk informiert (Anfrage Nr. 1)" in first.text
    for number in range(2, 51):
        chat = Chat(service, user=f"user-{number}")
        await chat.command("pruefen")
        assert "Der Helpdesk weiß bereits davon" in chat.text
        assert "(Anfrage Nr. 1)" in chat.text
        clock.advance(30)
    again = Chat(service, user="user-7")  # checking twice counts once
    await again.command("pruefen")
    assert "(Anfrage Nr. 1)" in again.text

    assert len(await tickets.listing()) == 1
    incident = await tickets.get(1)
    assert incident is not None and incident.affected == 50
    assert events.count("created") == 1
    assert events.count("reported") == 50  # each redraws the one card (see the desk)
    assert await service.store.run(records.queued_mails) == 1  # the new ticket's mail only

    # A user who deletes their data leaves the count; the incident stays for the others.
    await delete_my_data(Chat(service, user="user-1"))
    incident = await tickets.get(1)
    assert incident is not None and incident.active and incident.affected == 49


async def test_an_incident_ends_when_nobody_reported_it_for_a_while_or_the_server_is_healthy(
    broken_server: tuple[ConversationService, TicketService, StepClock],
    knowledge: KnowledgeBase,
    mail_servers: MailServers,
) -> None:
    service, tickets, clock = broken_server
    await Chat(service, user="user-1").command("pruefen")
    clock.advance(records.INCIDENT_QUIET.total_seconds() + 1)
    late = Chat(service, user="user-2")
    await late.command("pruefen")
    assert "ich habe den Helpdesk informiert (Anfrage Nr. 2)" in late.text

    # The server is repaired: a check finds it healthy, and the next outage is a new incident.
    repaired = dataclasses.replace(knowledge, server=mail_servers.good_server())
    handler = CheckActionHandler(lambda: repaired, timeout=5.0, ca_file=mail_servers.pki.ca)
    service.register(RunCheck, tickets.after_checks(handler))  # as `build_app` registers it
    healthy = Chat(service, user="user-3")
    await healthy.command("pruefen")
    assert "Anfrage Nr." not in healthy.text
    broken = dataclasses.replace(
        knowledge, server=mail_servers.server(("imap", mail_servers.postfix.expired, "tls", LOCAL))
    )
    handler = CheckActionHandler(lambda: broken, timeout=5.0, ca_file=mail_servers.pki.ca)
    service.register(RunCheck, tickets.after_checks(handler))
    broken_again = Chat(service, user="user-4")
    await broken_again.command("pruefen")
    assert "ich habe den Helpdesk informiert (Anfrage Nr. 3)" in broken_again.text
    assert [t.number for t in await tickets.listing()] == [1, 2, 3]


async def test_users_checking_at_once_on_two_instances_during_an_outage_open_one_incident(
    postgres_url: str, knowledge: KnowledgeBase, mail_servers: MailServers
) -> None:
    server = mail_servers.server(("imap", mail_servers.postfix.expired, "tls", LOCAL))
    ours = dataclasses.replace(knowledge, server=server)
    clock = StepClock()
    apps = []
    for migrate in (True, False):  # two `lotse serve` instances on one PostgreSQL
        store = await Store.open(postgres_url, migrate=migrate)
        apps.append(
            await with_tickets(
                postgres_url,
                ours,
                clock,
                store=store,
                check=True,
                check_timeout=5.0,
                check_ca_file=mail_servers.pki.ca,
            )
        )
    try:
        chats = [Chat(apps[n % 2].service, user=f"user-{n}") for n in range(20)]
        await asyncio.gather(*(chat.command("pruefen") for chat in chats))
        tickets = apps[0].tickets
        assert [t.number for t in await tickets.listing()] == [1]
        incident = await tickets.get(1)
        assert incident is not None and incident.affected == 20
        assert all("Anfrage Nr. 1)" in chat.text for chat in chats)
    finally:
        for app in apps:
            await app.close()
