"""A connection check that shows a server error opens a ticket (real loopback mail servers)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

from bot.check.handler import CheckActionHandler
from bot.conversation import ConversationService
from bot.engine.decision import RunCheck
from bot.knowledge.base import KnowledgeBase
from bot.storage.store import Store
from bot.understanding.lexicon import LexiconUnderstander
from tests.servers.mail import LOCAL, MailServers
from tests.support import Chat, attach_tickets


@pytest.fixture
async def broken_server(
    sqlite_url: str, knowledge: KnowledgeBase, mail_servers: MailServers
) -> AsyncIterator[ConversationService]:
    # IMAPS with an expired certificate: the check reports an error for the server.
    server = mail_servers.server(("imap", mail_servers.postfix.expired, "tls", LOCAL))
    ours = dataclasses.replace(knowledge, server=server)
    service = ConversationService(await Store.open(sqlite_url), ours, LexiconUnderstander(ours))
    service.register(
        RunCheck, CheckActionHandler(lambda: ours, timeout=5.0, ca_file=mail_servers.pki.ca)
    )
    attach_tickets(service)
    yield service
    await service.close()


async def test_a_check_that_shows_a_server_error_hands_the_user_to_the_helpdesk(
    broken_server: ConversationService,
) -> None:
    chat = Chat(broken_server)
    await chat.say("Thunderbird")
    await chat.command("pruefen")
    # The user asked for nothing: told what the test found and that the helpdesk knows.
    assert "Der Test zeigt einen Fehler am Mailserver; ich habe den Helpdesk informiert " in (
        chat.text
    )
    assert "(Anfrage Nr. 1)" in chat.text
    assert "weitergegeben" not in chat.text
    tickets = broken_server.tickets
    assert tickets is not None
    ticket = await tickets.get(1)
    assert ticket is not None and ticket.reason == "server_error"
    assert ticket.last_check is not None and ticket.last_check["overall"] == "error"
    # Checking again refers to the same ticket rather than opening another.
    await chat.command("pruefen")
    assert len(await tickets.listing()) == 1
