"""The agents' chat on Telegram, end to end: the real python-telegram-bot `Application` against
the fake Bot API (`tests/servers/telegram_api.py`), a group chat as the agents' chat and a
private chat as the user, with the real ticket and conversation services on SQLite."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.agents.desk import Desk
from bot.agents.telegram import connect_agents
from bot.channels.telegram import (
    ALLOWED_UPDATES,
    AnyApplication,
    TelegramChannel,
    build_application,
)
from bot.config import Settings
from bot.conversation import ConversationService
from bot.knowledge.base import KnowledgeBase
from bot.knowledge.registry import KnowledgeRegistry
from bot.storage.store import Store
from bot.tickets.service import TicketService
from bot.understanding.lexicon import LexiconUnderstander
from tests.servers.telegram_api import FakeTelegram, FakeUser, SentMessage, TelegramChat, mentions
from tests.support import KNOWLEDGE_DIR, open_service

AGENT_CHAT = -1001234567890
ANNA = FakeUser(1001, "Anna", "de")
BERT = FakeUser(2001, "Bert", "de")  # a helpdesk agent
CARLA = FakeUser(2002, "Carla", "de")  # another agent


@dataclass(frozen=True)
class Running:
    app: AnyApplication
    channel: TelegramChannel
    desk: Desk


@asynccontextmanager
async def running_bot(
    api: FakeTelegram, service: ConversationService, agent_chat: int | None = AGENT_CHAT
) -> AsyncIterator[Running]:
    """The bot as `lotse serve` runs its Telegram part, with the agents' chat connected."""
    settings = Settings(
        _env_file=None,
        telegram_token=SecretStr(api.token),
        telegram_base_url=api.base_url,
        telegram_agent_chat=agent_chat,
    )
    app = build_application(settings)
    channel = TelegramChannel(service)
    channel.install(app)
    await app.initialize()
    desk = connect_agents(app, channel, settings)
    assert app.updater is not None
    await app.updater.start_polling(timeout=1, allowed_updates=ALLOWED_UPDATES)
    await app.start()
    try:
        yield Running(app, channel, desk)
    finally:
        await desk.drain()
        await app.updater.stop()
        await app.stop()
        await app.shutdown()


@pytest.fixture
async def service_with_tickets(
    sqlite_url: str, knowledge: KnowledgeBase
) -> AsyncIterator[ConversationService]:
    service = await open_service(sqlite_url, knowledge)
    TicketService(service.store, lambda: service.knowledge).attach(service)
    yield service
    await service.store.close()


@pytest.fixture
async def bot(
    telegram_api: FakeTelegram, service_with_tickets: ConversationService
) -> AsyncIterator[Running]:
    async with running_bot(telegram_api, service_with_tickets) as running:
        yield running


def agents_chat(api: FakeTelegram, agent: FakeUser = BERT) -> TelegramChat:
    return TelegramChat(api, agent, chat=api.group_chat(AGENT_CHAT))


def bot_messages_in_group(api: FakeTelegram) -> list[SentMessage]:
    return api.messages_to(AGENT_CHAT)


async def ticket_opened(api: FakeTelegram, anna: TelegramChat) -> SentMessage:
    """Anna walks to step 2 of Thunderbird and asks for a human; the card in the group."""
    await anna.say("Thunderbird")
    await anna.say("weiter")
    assert "Schritt 2 von 5" in anna.text
    await anna.say("/mensch", mentions("Nummer 1"))
    await api.wait_for(
        lambda: any("Ticket #1" in m.text for m in bot_messages_in_group(api)), "the ticket card"
    )
    return next(m for m in bot_messages_in_group(api) if "Ticket #1" in m.text)


async def test_an_agent_takes_answers_hears_back_and_hands_the_user_back_to_a_guide(
    telegram_api: FakeTelegram, bot: Running
) -> None:
    api = telegram_api
    anna, bert = TelegramChat(api, ANNA), agents_chat(api)
    card = await ticket_opened(api, anna)
    assert card.text.split("\n")[:3] == [
        "Ticket #1 · neu",
        "Anlass: Nutzer möchte mit einem Menschen sprechen",
        "Programm: Thunderbird, Anleitung thunderbird, Schritt 2",
    ]
    assert "Wartet seit weniger als 1 Min. auf eine Antwort." in card.text
    assert [label for label, _data in card.buttons] == [
        "Übernehmen",
        "An Lotse zurückgeben",
        "Schließen",
    ]

    # Bert takes it with the button: the card says so, Anna is told, Lotse falls silent.
    query = bert.press("Übernehmen")
    await api.wait_for(lambda: "Übernommen von Bert (2001)." in card.text, "the card to change")
    assert card.text.startswith("Ticket #1 · in Bearbeitung")
    assert [label for label, _data in card.buttons] == ["An Lotse zurückgeben", "Schließen"]
    toast = next(
        c for c in api.calls_to("answerCallbackQuery") if c.params["callback_query_id"] == query
    )
    assert toast.params["text"] == "Sie haben Ticket #1 übernommen."
    await anna.replies(mentions("hat Ihre Anfrage Nr. 1 übernommen"))
    await bert.replies(mentions("#1 übernommen von Bert (2001)."))

    # Bert answers by replying to the card; Anna gets his words exactly.
    answer = "Guten Tag!\n\nBitte öffnen Sie <Konten-Einstellungen> & prüfen Sie Port 993."
    bert.send(answer, reply_to=card)
    await anna.replies(mentions("Antwort vom Helpdesk (Anfrage Nr. 1):"))
    assert anna.text == f"Antwort vom Helpdesk (Anfrage Nr. 1):\n\n{answer}"

    # Anna's reply reaches the agents as a reply to the card; Lotse does not answer her.
    await anna_writes(anna, "Danke, aber jetzt kommt eine Zertifikatswarnung.")
    relayed = await bert.replies(mentions("#1 Nutzer: Danke, aber jetzt kommt"))
    assert relayed[-1].data["reply_to_message"]["message_id"] == card.message_id
    assert anna.unseen() == []

    # Bert replies to the relayed message: that finds the ticket too.
    bert.send("Bitte nehmen Sie die Warnung nicht an und schreiben Sie mir den Text.", relayed[-1])
    await anna.replies(mentions("nicht an und schreiben Sie mir den Text"))

    # Back to Lotse at the start of the Thunderbird guide; Lotse answers Anna again.
    await bert.say("/anleitung 1 thunderbird", mentions("an Lotse zurückgegeben"))
    assert "#1 von Bert (2001) an Lotse zurückgegeben. Weiter mit der Anleitung thunderbird." in (
        bert.text
    )
    await anna.replies()
    assert "wieder an mich, Lotse, übergeben" in anna.text
    assert "Mozilla Thunderbird (60.3.1) – Schritt 1 von 5" in anna.text
    await api.wait_for(lambda: "zurück bei Lotse" in card.text, "the card to say so")
    await anna.tap("Erledigt – weiter")
    assert "Schritt 2 von 5" in anna.text


async def anna_writes(anna: TelegramChat, text: str) -> None:
    """Anna writes while an agent has her ticket (no answer from Lotse is expected)."""
    anna.send(text)


async def test_agents_get_polite_answers_for_what_cannot_be_done(
    telegram_api: FakeTelegram, bot: Running
) -> None:
    api = telegram_api
    anna, bert = TelegramChat(api, ANNA), agents_chat(api)
    card = await ticket_opened(api, anna)
    bert.seen = len(bot_messages_in_group(api))  # the card: read

    async def answer_to(command: str) -> str:
        await bert.say(command, lambda messages: bool(messages))
        return bert.text

    assert await answer_to("/antwort 99 Hallo") == "Ein Ticket Nr. 99 gibt es nicht."
    assert await answer_to("/antwort 1") == (
        "Bitte schreiben Sie den Text für den Nutzer hinter die Nummer, zum Beispiel: "
        "/antwort 1 Guten Tag, …"
    )
    assert (
        await answer_to("/nehmen") == "Bitte nennen Sie die Ticketnummer, zum Beispiel: /nehmen 12"
    )
    unknown_guide = await answer_to("/anleitung 1 outlook-97")
    assert unknown_guide.startswith("Eine Anleitung „outlook-97“ gibt es nicht. Bekannt sind:")
    assert "thunderbird" in unknown_guide
    assert (
        await answer_to("/kaffee")
        == "Den Befehl /kaffee kenne ich nicht. /hilfe zeigt, was ich kann."
    )
    assert "/antwort 12 Text" in await answer_to("/hilfe")
    assert await answer_to("/tickets") == (
        "Offene Tickets:\n"
        "#1 · neu · Nutzer möchte mit einem Menschen sprechen · seit weniger als 1 Min. · "
        "bei niemand"
    )

    await bert.say("/schliessen 1", mentions("#1 geschlossen von Bert (2001)."))
    await api.wait_for(lambda: card.text.startswith("Ticket #1 · geschlossen"), "closed card")
    assert card.buttons == []
    closed = await answer_to("/antwort 1 Noch eine Frage?")
    assert "geschlossen" in closed
    # A button of the closed card (still on a colleague's screen) gets an alert, not an action.
    query = api.user_taps(CARLA, card, "desk:take:1")
    await api.wait_for(
        lambda: any(
            c.params["callback_query_id"] == query for c in api.calls_to("answerCallbackQuery")
        ),
        "the tap's answer",
    )
    alert = next(
        c for c in api.calls_to("answerCallbackQuery") if c.params["callback_query_id"] == query
    )
    assert alert.params["show_alert"] == "true"  # form fields are text
    assert "geschlossen" in alert.params["text"]
    # Agents talking among themselves are left alone.
    before = len(bot_messages_in_group(api))
    await bert.say("Kaffee, Carla?", lambda messages: True)
    await bert.say("/tickets", mentions("Keine offenen Tickets."))
    assert len(bot_messages_in_group(api)) == before + 1


async def test_only_the_agents_group_acts_as_agents(
    telegram_api: FakeTelegram, bot: Running
) -> None:
    api = telegram_api
    anna = TelegramChat(api, ANNA)
    await ticket_opened(api, anna)
    mallory = TelegramChat(api, FakeUser(3003, "Mallory"))
    await mallory.say("/antwort 1 Bitte schicken Sie mir Ihr Passwort.")  # a user's /command
    assert "Welches Mailprogramm benutzen Sie?" in mallory.text  # Lotse answers as to anyone
    await bot.desk.drain()
    assert not any("Passwort" in m.text for m in api.messages_to(ANNA.id))
    tickets = bot.channel.service.tickets
    assert tickets is not None
    ticket = await tickets.get(1)
    assert ticket is not None and ticket.status == "new" and ticket.assignee is None


async def test_a_reload_of_the_knowledge_base_and_a_rejected_edit_are_posted_to_the_agents(
    telegram_api: FakeTelegram, sqlite_url: str, tmp_path: Path
) -> None:
    directory = tmp_path / "knowledge"
    shutil.copytree(KNOWLEDGE_DIR, directory)
    registry = KnowledgeRegistry.load(directory)
    store = await Store.open(sqlite_url)
    service = ConversationService(store, registry, LexiconUnderstander(registry.current))

    def notices() -> list[str]:
        return [m.text for m in bot_messages_in_group(telegram_api)]

    try:
        async with running_bot(telegram_api, service):
            service.watch_knowledge(interval=0.05)  # as the running bot does, every 2 s
            guide = directory / "thunderbird.yaml"
            guide.write_text(guide.read_text().replace("Extras", "Extras (Menü)", 1))
            await telegram_api.wait_for(lambda: len(notices()) == 1, "the reload notice")
            assert notices()[0] == (
                f"Wissensbasis neu geladen (Revision {registry.current.revision}). "
                "Geändert: thunderbird."
            )

            guide.write_text(guide.read_text() + "\nthis: [is not, valid\n")
            await telegram_api.wait_for(lambda: len(notices()) == 2, "the rejection notice")
            assert notices()[1].startswith(
                "Änderung an der Wissensbasis abgelehnt; es gilt weiter die letzte gültige Fassung."
            )
            assert "thunderbird.yaml" in notices()[1]
    finally:
        await service.close()
