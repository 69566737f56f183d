"""The agents' chat on Telegram, end to end: the real python-telegram-bot `Application` against
the fake Bot API (`tests/servers/telegram_api.py`), a group chat as the agents' chat and a
private chat as the user, with the real ticket and conversation services on SQLite."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from telegram import Update

from bot.agents.desk import Desk
from bot.agents.telegram import connect_agents
from bot.app import App
from bot.channels.telegram import (
    ALLOWED_UPDATES,
    CHANNEL,
    AnyApplication,
    TelegramChannel,
    build_application,
)
from bot.clock import utcnow
from bot.config import Settings
from bot.conversation import ConversationService
from bot.i18n import translator
from bot.knowledge.base import KnowledgeBase
from bot.knowledge.registry import KnowledgeRegistry
from bot.tickets import records
from bot.tickets.records import MERGE_WINDOW, NewTicket
from bot.turns import Inbound
from tests.servers.telegram_api import FakeTelegram, FakeUser, SentMessage, TelegramChat, mentions
from tests.support import KNOWLEDGE_DIR, WITHOUT_MAIL, StepClock, open_app

AGENT_CHAT = -1001234567890
ANNA = FakeUser(1001, "Anna", "de")
BERT = FakeUser(2001, "Bert", "de")  # a helpdesk agent
CARLA = FakeUser(2002, "Carla", "de")  # another agent
DORA = FakeUser(1002, "Dora", "de")  # another user
RELAY_NOTE = "Ihre Nachricht ist beim Helpdesk angekommen. Die Antwort bekommen Sie hier im Chat."


@dataclass(frozen=True)
class Running:
    app: AnyApplication
    channel: TelegramChannel
    desk: Desk
    lotse: App


@asynccontextmanager
async def running_bot(
    api: FakeTelegram,
    lotse: App,
    agent_chat: int | None = AGENT_CHAT,
    *,
    polling: bool = True,
    clock: StepClock | None = None,
) -> AsyncIterator[Running]:
    """The bot as `lotse serve` runs its Telegram part, with the agents' chat connected.

    `polling=False`: an instance behind a webhook; the test delivers updates (`delivered`).
    """
    settings = Settings(
        _env_file=None,
        telegram_token=SecretStr(api.token),
        telegram_base_url=api.base_url,
        telegram_agent_chat=agent_chat,
    )
    app = build_application(settings)
    channel = TelegramChannel(lotse.service)
    channel.install(app)
    await app.initialize()
    desk = Desk(lotse.tickets, lotse.registry, translator("de"), clock=clock or utcnow)
    connect_agents(app, channel, settings, desk)
    assert app.updater is not None
    if polling:
        await app.updater.start_polling(timeout=1, allowed_updates=ALLOWED_UPDATES)
    await app.start()
    try:
        yield Running(app, channel, desk, lotse)
    finally:
        await desk.drain()
        await desk.stop_delivery("telegram", 5.0)
        if polling:
            await app.updater.stop()
        await app.stop()
        await app.shutdown()


@pytest.fixture
async def bot(telegram_api: FakeTelegram, tickets_app: App) -> AsyncIterator[Running]:
    async with running_bot(telegram_api, tickets_app) as running:
        yield running


def agents_chat(api: FakeTelegram, agent: FakeUser = BERT) -> TelegramChat:
    return TelegramChat(api, agent, chat=api.group_chat(AGENT_CHAT))


def bot_messages_in_group(api: FakeTelegram) -> list[SentMessage]:
    return api.messages_to(AGENT_CHAT)


async def ticket_opened(api: FakeTelegram, anna: TelegramChat) -> SentMessage:
    """Anna walks to step 2 of Thunderbird and asks for a human; the card in the group."""
    await anna.say("Thunderbird 60")
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
        "Anlass: Nutzer bittet um einen Menschen",
        "Programm: Thunderbird 60, Version 60, Anleitung thunderbird, Schritt 2",
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
    toast = await tap_answer(api, query)  # answered after the card was edited
    assert toast["text"] == "Sie haben Ticket #1 übernommen."
    await anna.replies(mentions("hat Ihre Anfrage Nr. 1 übernommen"))
    await bert.replies(mentions("#1 übernommen von Bert (2001)."))

    # Bert answers by replying to the card; Anna gets his words exactly.
    answer = "Guten Tag!\n\nBitte öffnen Sie <Konten-Einstellungen> & prüfen Sie Port 993."
    bert.send(answer, reply_to=card)
    await anna.replies(mentions("Antwort vom Helpdesk (Anfrage Nr. 1):"))
    assert anna.text == f"Antwort vom Helpdesk (Anfrage Nr. 1):\n\n{answer}"

    # Anna's reply reaches the agents as a reply to the card; Lotse only says, once, where
    # her message went.
    await anna_writes(anna, "Danke, aber jetzt kommt eine Zertifikatswarnung.")
    relayed = await bert.replies(mentions("#1 Nutzer: Danke, aber jetzt kommt"))
    assert relayed[-1].data["reply_to_message"]["message_id"] == card.message_id
    await anna.replies(mentions("beim Helpdesk angekommen"))
    assert anna.text == RELAY_NOTE

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
        "#1 · neu · Nutzer bittet um einen Menschen · seit weniger als 1 Min. · "
        "bei niemand"
    )

    await bert.say("/schliessen 1", mentions("#1 geschlossen von Bert (2001)."))
    await api.wait_for(lambda: card.text.startswith("Ticket #1 · geschlossen"), "closed card")
    assert card.buttons == []
    closed = await answer_to("/antwort 1 Noch eine Frage?")
    assert "geschlossen" in closed
    # A button of the closed card (still on a colleague's screen) gets an alert, not an action.
    query = api.user_taps(CARLA, card, "desk:take:1")
    alert = await tap_answer(api, query)
    assert alert["show_alert"] == "true"  # form fields are text
    assert "geschlossen" in alert["text"]
    # Agents talking among themselves are left alone.
    before = len(bot_messages_in_group(api))
    await bert.say("Kaffee, Carla?", lambda messages: True)
    await bert.say("/tickets", mentions("Keine offenen Tickets."))
    assert len(bot_messages_in_group(api)) == before + 1


HINT = "Bitte antworten Sie auf die Karte eines Tickets oder schreiben Sie /antwort N Text."


async def test_a_reply_to_the_list_the_help_or_an_error_answer_reaches_no_user(
    telegram_api: FakeTelegram, sqlite_url: str, knowledge: KnowledgeBase
) -> None:
    """The reviewer's case: the list names "#1", yet replying to it must not answer ticket 1."""
    api = telegram_api
    anna, bert = TelegramChat(api, ANNA), agents_chat(api)
    async with instance(api, sqlite_url, knowledge) as running:
        await ticket_opened(api, anna)
        bert.seen = len(bot_messages_in_group(api))
        listing = (await bert.say("/tickets", mentions("Offene Tickets:")))[-1]
        assert "#1 · neu" in listing.text
        help_text = (await bert.say("/hilfe", mentions("So bearbeiten Sie Tickets hier:")))[-1]
        error = (await bert.say("/nehmen 9", mentions("Ein Ticket Nr. 9 gibt es nicht.")))[-1]
        seen_by_anna = len(api.messages_to(ANNA.id))

        for message in (listing, help_text, error):
            bert.send("Das übernehme ich, Anna bekommt gleich Bescheid.", reply_to=message)
            hint = await bert.replies(mentions(HINT))
            assert hint[-1].text == HINT
        await running.desk.drain()
        tickets = running.lotse.tickets
        ticket = await tickets.get(1)
        assert ticket is not None and ticket.status == "new" and ticket.assignee is None
    # After a restart the bot knows its messages only from the database: still no answer.
    async with instance(api, sqlite_url, knowledge) as restarted:
        bert.send("Das übernehme ich.", reply_to=listing)
        await bert.replies(mentions(HINT))
        await restarted.desk.drain()
    assert len(api.messages_to(ANNA.id)) == seen_by_anna


async def tap_answer(api: FakeTelegram, query: str) -> dict[str, str]:
    """How the bot answered a tap (a toast or an alert), once it has."""

    def answers() -> list[dict[str, str]]:
        calls = api.calls_to("answerCallbackQuery")
        return [c.params for c in calls if c.params["callback_query_id"] == query]

    await api.wait_for(lambda: bool(answers()), "the tap's answer")
    return answers()[0]


async def test_an_agent_is_told_when_the_user_cannot_be_reached_and_not_to_repeat_the_change(
    telegram_api: FakeTelegram, bot: Running
) -> None:
    api = telegram_api
    anna, bert = TelegramChat(api, ANNA), agents_chat(api)
    card = await ticket_opened(api, anna)
    api.blocked_chats.add(ANNA.id)  # Anna blocked the bot since
    bert.seen = len(bot_messages_in_group(api))

    # The tap took the ticket (the card says so); the alert says Anna did not hear of it.
    query = bert.press("Übernehmen", card)
    await api.wait_for(lambda: "Übernommen von Bert (2001)." in card.text, "the card to change")
    alert = await tap_answer(api, query)
    assert alert["show_alert"] == "true"
    assert alert["text"] == (
        "Ticket Nr. 1 ist gespeichert. Die Nachricht hat den Nutzer leider nicht erreicht. Bitte "
        "nicht wiederholen; schreiben Sie dem Nutzer auf anderem Weg oder später noch einmal."
    )

    # A written answer: recorded once, and the same warning as a reply in the chat.
    bert.send("Bitte prüfen Sie Port 993.", reply_to=card)
    warning = await bert.replies(mentions("Bitte nicht wiederholen"))
    assert warning[-1].text.startswith("Ticket Nr. 1 ist gespeichert.")
    tickets = bot.lotse.tickets
    transcript = [m.text for m in await tickets.transcript(1)]
    assert transcript.count("Bitte prüfen Sie Port 993.") == 1


async def test_an_answer_to_a_user_on_a_channel_this_instance_does_not_run_is_refused_politely(
    telegram_api: FakeTelegram, bot: Running
) -> None:
    """A Matrix user's ticket, handled by an instance that runs only Telegram."""
    tickets = bot.lotse.tickets
    new = NewTicket("requested", "matrix", "@anna:uni.example", "de", *[None] * 6)
    await tickets.store.run(records.create, new, None)
    bert = agents_chat(telegram_api)
    await bert.say("/antwort 1 Guten Tag!", mentions("nicht erreichbar"))
    assert bert.text == "Der Nutzer ist über matrix von hier aus nicht erreichbar."
    assert await tickets.transcript(1) == []  # refused before anything was recorded
    ticket = await tickets.get(1)
    assert ticket is not None and ticket.status == "new"


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
    tickets = bot.lotse.tickets
    ticket = await tickets.get(1)
    assert ticket is not None and ticket.status == "new" and ticket.assignee is None


async def test_a_reload_of_the_knowledge_base_and_a_rejected_edit_are_posted_to_the_agents(
    telegram_api: FakeTelegram, sqlite_url: str, tmp_path: Path
) -> None:
    directory = tmp_path / "knowledge"
    shutil.copytree(KNOWLEDGE_DIR, directory)
    registry = KnowledgeRegistry.load(directory)
    lotse = await open_app(sqlite_url, registry)
    service = lotse.service

    def notices() -> list[str]:
        return [m.text for m in bot_messages_in_group(telegram_api)]

    try:
        async with running_bot(telegram_api, lotse):
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


# --- cards that survive restarts and are shared by instances --------------------------------


@asynccontextmanager
async def instance(
    api: FakeTelegram,
    url: str,
    knowledge: KnowledgeBase,
    *,
    polling: bool = True,
    clock: StepClock | None = None,
) -> AsyncIterator[Running]:
    """One `lotse serve` process: its own store, services and desk, nothing kept in memory."""
    lotse = await open_app(url, knowledge, tickets=True, clock=utcnow, **WITHOUT_MAIL)
    try:
        async with running_bot(api, lotse, polling=polling, clock=clock) as running:
            yield running
    finally:
        await lotse.close()


_delivered_ids = itertools.count(1_000_000)


async def delivered(running: Running, update: dict[str, Any]) -> None:
    """The load balancer hands this update to this instance (as Telegram's webhook would)."""
    await running.app.process_update(Update.de_json(update, running.app.bot))


def tap_update(user: FakeUser, message: SentMessage, data: str) -> dict[str, Any]:
    number = next(_delivered_ids)
    query = {
        "id": f"q{number}",
        "from": user.as_json(),
        "message": message.data,
        "chat_instance": f"instance-{message.chat_id}",
        "data": data,
    }
    return {"update_id": number, "callback_query": query}


def edited_messages(api: FakeTelegram) -> set[int]:
    return {int(call.params["message_id"]) for call in api.calls_to("editMessageText")}


def cards_in_group(api: FakeTelegram) -> list[SentMessage]:
    return [m for m in bot_messages_in_group(api) if m.text.startswith("Ticket #")]


def replied_to(message: SentMessage) -> int | None:
    reply = message.data.get("reply_to_message")
    return int(reply["message_id"]) if reply else None


async def test_after_a_restart_the_bot_edits_the_same_card_and_relays_replies_to_it(
    telegram_api: FakeTelegram, sqlite_url: str, knowledge: KnowledgeBase
) -> None:
    api = telegram_api
    anna, bert = TelegramChat(api, ANNA), agents_chat(api)
    async with instance(api, sqlite_url, knowledge):
        card = await ticket_opened(api, anna)
    # A deploy restarts the bot: a new process remembers nothing but the database.
    async with instance(api, sqlite_url, knowledge):
        bert.seen = len(bot_messages_in_group(api))
        bert.press("Übernehmen", card)
        line = await bert.replies(mentions("#1 übernommen von Bert (2001)."))
        assert card.text.startswith("Ticket #1 · in Bearbeitung")
        assert edited_messages(api) == {card.message_id}
        assert replied_to(line[-1]) == card.message_id

        await anna_writes(anna, "Jetzt fragt Thunderbird nach einer Ausnahme.")
        relayed = await bert.replies(mentions("#1 Nutzer: Jetzt fragt Thunderbird"))
        assert replied_to(relayed[-1]) == card.message_id

        # A reply to the card posted before the restart still reaches Anna.
        bert.send("Bitte fügen Sie keine Ausnahme hinzu.", reply_to=card)
        await anna.replies(mentions("Bitte fügen Sie keine Ausnahme hinzu."))
        assert cards_in_group(api) == [card]  # no fresh card anywhere


async def test_two_instances_on_one_postgresql_edit_and_reply_to_the_one_card(
    telegram_api: FakeTelegram, postgres_url: str, knowledge: KnowledgeBase
) -> None:
    api = telegram_api
    anna, bert = TelegramChat(api, ANNA), agents_chat(api)
    async with (
        instance(api, postgres_url, knowledge) as first,
        instance(api, postgres_url, knowledge, polling=False) as second,
    ):
        card = await ticket_opened(api, anna)  # the first instance posted the card
        bert.seen = len(bot_messages_in_group(api))

        # Bert's tap reaches the second instance: it edits the first instance's card.
        await delivered(second, tap_update(BERT, card, "desk:take:1"))
        line = await bert.replies(mentions("#1 übernommen von Bert (2001)."))
        assert card.text.startswith("Ticket #1 · in Bearbeitung")
        assert replied_to(line[-1]) == card.message_id

        # So does Anna's next message: relayed as a reply to that card.
        await delivered(second, api.message_update(ANNA, "Es kommt eine Zertifikatswarnung."))
        relayed = await bert.replies(mentions("#1 Nutzer: Es kommt eine Zertifikatswarnung."))
        assert replied_to(relayed[-1]) == card.message_id

        # The first instance closes it, on the same card again.
        await bert.say("/schliessen 1", mentions("#1 geschlossen von Bert (2001)."))
        await first.desk.drain()
        assert card.text.startswith("Ticket #1 · geschlossen")
        assert replied_to(bert.last[-1]) == card.message_id
        assert edited_messages(api) == {card.message_id}
        assert cards_in_group(api) == [card]


# --- floods, fairness and restarts ---------------------------------------------------------


def relays_in_group(api: FakeTelegram, number: int) -> list[SentMessage]:
    return [m for m in bot_messages_in_group(api) if m.text.startswith(f"#{number} Nutzer:")]


async def user_writes(service: ConversationService, user: FakeUser, text: str) -> None:
    """What the user writes, through the conversation service as the channel hands it on."""
    await service.handle(Inbound(CHANNEL, str(user.id), text=text))


async def taken_ticket(api: FakeTelegram, running: Running) -> ConversationService:
    """Anna's ticket #1, taken by Bert, its card and status line shown."""
    await ticket_opened(api, TelegramChat(api, ANNA))
    service = running.channel.service
    await running.lotse.tickets.take(1, "Bert")
    await running.desk.drain()
    return service


async def test_a_user_who_sends_45_messages_within_seconds_to_a_taken_ticket_makes_one_relay_post(
    telegram_api: FakeTelegram, sqlite_url: str, knowledge: KnowledgeBase
) -> None:
    api, clock = telegram_api, StepClock()
    async with instance(api, sqlite_url, knowledge, clock=clock) as running:
        service = await taken_ticket(api, running)
        for number in range(1, 46):
            await user_writes(service, ANNA, f"Nachricht {number}")
            clock.advance(0.05)
        clock.advance(MERGE_WINDOW.total_seconds())
        running.desk.wake()
        await api.wait_for(lambda: bool(relays_in_group(api, 1)), "the relay")
        await running.desk.drain()
        relays = relays_in_group(api, 1)
        assert len(relays) == 1
        assert relays[0].text.startswith("#1 Nutzer: Nachricht 1\nNachricht 2\n")
        assert relays[0].text.endswith("Nachricht 45")
        card = next(m for m in bot_messages_in_group(api) if m.text.startswith("Ticket #1"))
        assert relays[0].data["reply_to_message"]["message_id"] == card.message_id

        # Written after the window: the next relay.
        clock.advance(10)
        await user_writes(service, ANNA, "Noch etwas")
        clock.advance(MERGE_WINDOW.total_seconds())
        running.desk.wake()
        await api.wait_for(lambda: len(relays_in_group(api, 1)) == 2, "the second relay")


async def test_cards_and_relays_queued_when_serve_stops_are_posted_after_restart_once_each(
    telegram_api: FakeTelegram, sqlite_url: str, knowledge: KnowledgeBase
) -> None:
    """Stopped while 12 relays of Anna's and Dora's new ticket wait: after the restart Dora's
    card comes first (it is not stuck behind Anna's backlog), then Anna's relays in order.
    (12: the group's share of Telegram's rate limit, 20 a minute, posts them at once.)"""
    api, clock = telegram_api, StepClock()
    async with instance(api, sqlite_url, knowledge, clock=clock) as first:
        service = await taken_ticket(api, first)
        posted_before = len(bot_messages_in_group(api))
        await first.desk.stop_delivery(CHANNEL, 5.0)  # serve is stopping
        for number in range(1, 13):
            await user_writes(service, ANNA, f"Nachricht {number}")
            clock.advance(MERGE_WINDOW.total_seconds() + 1)  # each a relay of its own
        await service.handle(Inbound(CHANNEL, str(DORA.id), command="mensch"))
    assert len(bot_messages_in_group(api)) == posted_before  # all of it waits in the database

    async with instance(api, sqlite_url, knowledge, clock=clock) as restarted:
        await api.wait_for(lambda: len(relays_in_group(api, 1)) == 12, "the relays")
        await restarted.desk.drain()
    after = bot_messages_in_group(api)[posted_before:]
    assert after[0].text.startswith("Ticket #2 · neu")
    assert [m.text for m in after[1:]] == [f"#1 Nutzer: Nachricht {n}" for n in range(1, 13)]


async def test_a_new_tickets_card_is_posted_before_another_users_backlog_of_40_relays_is_through(
    telegram_api: FakeTelegram, sqlite_url: str, knowledge: KnowledgeBase
) -> None:
    """Telegram lets a bot post about 20 messages a minute in a group: Anna's 40 relays take
    minutes, and Dora's card must not wait for them."""
    api, clock = telegram_api, StepClock()
    async with instance(api, sqlite_url, knowledge, clock=clock) as running:
        service = await taken_ticket(api, running)
        for number in range(1, 41):
            await user_writes(service, ANNA, f"Nachricht {number}")
            clock.advance(MERGE_WINDOW.total_seconds() + 1)
        running.desk.wake()
        await api.wait_for(lambda: bool(relays_in_group(api, 1)), "Anna's backlog to start")
        await service.handle(Inbound(CHANNEL, str(DORA.id), command="mensch"))
        await api.wait_for(
            lambda: any(m.text.startswith("Ticket #2") for m in bot_messages_in_group(api)),
            "Dora's card",
        )
        assert len(relays_in_group(api, 1)) < 40
        await running.desk.stop_delivery(CHANNEL, 5.0)  # the rest waits for the next start


async def test_a_user_who_deletes_their_data_takes_the_relays_still_waiting_with_them(
    telegram_api: FakeTelegram, sqlite_url: str, knowledge: KnowledgeBase
) -> None:
    api, clock = telegram_api, StepClock()
    async with instance(api, sqlite_url, knowledge, clock=clock) as running:
        service = await taken_ticket(api, running)
        await user_writes(service, ANNA, "Ich wohne in der Musterstraße 5")
        await service.handle(Inbound(CHANNEL, str(ANNA.id), command="loeschen"))
        await user_writes(service, ANNA, "Ja")
        clock.advance(MERGE_WINDOW.total_seconds())
        running.desk.wake()
        await api.wait_for(
            lambda: any(m.text.startswith("Ticket #1 · geschlossen") for m in api.sent),
            "the card to say the ticket is closed",
        )
        await running.desk.drain()
    assert not any("Musterstraße" in m.text for m in bot_messages_in_group(api))
