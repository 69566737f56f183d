"""The connection check inside a conversation, against the real loopback mail servers."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

from bot.conversation import ConversationService
from bot.knowledge.base import KnowledgeBase
from tests.servers.mail import MailServers
from tests.support import Chat, open_app


@pytest.fixture
async def checked(
    sqlite_url: str, knowledge: KnowledgeBase, mail_servers: MailServers
) -> AsyncIterator[ConversationService]:
    # The real guides, with the loopback mail servers as the server.
    ours = dataclasses.replace(knowledge, server=mail_servers.good_server())
    app = await open_app(
        sqlite_url, ours, check=True, check_timeout=5.0, check_ca_file=mail_servers.pki.ca
    )
    yield app.service
    await app.close()


async def test_a_user_mid_guide_asks_for_a_check_and_gets_a_summary_then_the_step_again(
    checked: ConversationService,
) -> None:
    chat = Chat(checked)
    await chat.say("Thunderbird 60")
    await chat.say("Kannst du prüfen, ob der Server geht?")
    summary = chat.replies[0].text
    for protocol in ("IMAP", "POP3", "SMTP"):
        assert protocol in summary
    assert "Details anzeigen" in chat.options
    assert "Mozilla Thunderbird (60.3.1) – Schritt 1 von 5" in chat.text
    state = await chat.state()
    assert state.last_check is not None and state.last_check["overall"] == "ok"
    await chat.tap("Details anzeigen")
    assert "TLS" in chat.text and "Port" in chat.text
