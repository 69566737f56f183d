"""A connection check that shows a server error opens a ticket (real loopback mail servers)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

from bot.app import App
from bot.knowledge.base import KnowledgeBase
from tests.servers.mail import LOCAL, MailServers
from tests.support import Chat, open_app


@pytest.fixture
async def broken_server(
    sqlite_url: str, knowledge: KnowledgeBase, mail_servers: MailServers
) -> AsyncIterator[App]:
    # IMAPS with an expired certificate: the check reports an error for the server.
    server = mail_servers.server(("imap", mail_servers.postfix.expired, "tls", LOCAL))
    ours = dataclasses.replace(knowledge, server=server)
    app = await open_app(
        sqlite_url,
        ours,
        tickets=True,
        check=True,
        check_timeout=5.0,
        check_ca_file=mail_servers.pki.ca,
    )
    yield app
    await app.close()


async def test_a_check_that_shows_a_server_error_hands_the_user_to_the_helpdesk(
    broken_server: App,
) -> None:
    chat = Chat(broken_server.service)
    await chat.say("Thunderbird 60")
    await chat.command("pruefen")
    # The user asked for nothing: told what the test found and that the helpdesk knows.
    assert "Der Test zeigt einen Fehler am Mailserver; ich habe den Helpdesk informiert " in (
        chat.text
    )
    assert "(Anfrage Nr. 1)" in chat.text
    assert "weitergegeben" not in chat.text
    tickets = broken_server.tickets
    ticket = await tickets.get(1)
    assert ticket is not None and ticket.reason == "server_error"
    assert ticket.last_check is not None and ticket.last_check["overall"] == "error"
    # Checking again refers to the same ticket rather than opening another.
    await chat.command("pruefen")
    assert len(await tickets.listing()) == 1
