"""The agents' chat on Matrix, end to end against a real Synapse (`tests/servers/synapse.py`):
the bot runs `serve` (what `lotse matrix` runs) with an agents' room; a helpdesk agent and a
user are real matrix-nio clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from nio import RoomSendResponse  # type: ignore[import-untyped]
from pydantic import SecretStr

from bot.agents.matrix import privileged_creators
from bot.app import build_app
from bot.channels.matrix import DIRECT_ROOMS_FILE
from bot.config import Settings
from bot.serve.process import serve as serve_all
from tests.matrix_user import GREETING, MatrixUser, matrix_user
from tests.servers.synapse import MatrixAccount, SynapseServer
from tests.servers.telegram_api import FakeTelegram, FakeUser, TelegramChat, mentions
from tests.support import serve_matrix

AGENT_CHAT = -1001234567890
ANNA = FakeUser(1001, "Anna", "de")  # a user on Telegram
CARLA = FakeUser(2002, "Carla", "de")  # a helpdesk agent in the Telegram group

pytestmark = pytest.mark.slow


@pytest.fixture
async def anna(synapse_server: SynapseServer, tmp_path: Path) -> AsyncIterator[MatrixUser]:
    user = await matrix_user(synapse_server, tmp_path, "anna")
    yield user
    await user.close()


@pytest.fixture
async def bert(synapse_server: SynapseServer, tmp_path: Path) -> AsyncIterator[MatrixUser]:
    """A helpdesk agent."""
    user = await matrix_user(synapse_server, tmp_path, "bert")
    yield user
    await user.close()


async def reply(user: MatrixUser, room_id: str, event_id: str, text: str) -> None:
    """A reply as current clients send it: the relation, no quoted fallback in the body."""
    response = await user.client.room_send(
        room_id,
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": text,
            "m.relates_to": {"m.in_reply_to": {"event_id": event_id}},
        },
    )
    assert isinstance(response, RoomSendResponse), response


def event_with(user: MatrixUser, room_id: str, text: str) -> Any:
    return next(
        item.event for item in user.received if item.room_id == room_id and text in item.body
    )


async def test_an_agent_in_the_agents_room_takes_answers_and_hands_back_a_matrix_user(
    synapse_server: SynapseServer, anna: MatrixUser, bert: MatrixUser, tmp_path: Path
) -> None:
    lotse = synapse_server.new_account("lotse")
    agents_room = (await bert.client.room_create(name="Helpdesk", invite=[lotse.user_id])).room_id
    directory = tmp_path / "bot"
    settings = bot_settings(synapse_server, lotse, agents_room, tmp_path, directory / "store")
    task = asyncio.ensure_future(serve_matrix(settings))
    try:
        room = await anna.open_direct_chat(lotse.user_id, encrypted=False)
        await anna.until(lambda: any(GREETING in body for body in anna.bodies()), "the greeting")
        await anna.ask(room, "Thunderbird 60", "Schritt 1 von 5")
        await anna.ask(room, "!mensch", "Nummer 1")

        await bert.until(lambda: any("Ticket #1" in b for b in bert.bodies()), "the ticket card")
        card = event_with(bert, agents_room, "Ticket #1")
        assert "Programm: Thunderbird 60, Version 60, Anleitung thunderbird, Schritt 1" in card.body
        assert card.body.endswith(
            "!nehmen 1 – Übernehmen\n!anleitung 1 – An Lotse zurückgeben\n!schliessen 1 – Schließen"
        )

        # Bert takes the ticket by command; the card is edited, Anna is told.
        start = len(anna.received)
        await bert.say(agents_room, "!nehmen 1")
        await anna.until(
            lambda: any("übernommen" in b for b in anna.bodies(start)), "Anna to be told"
        )
        await bert.until(lambda: any("#1 übernommen von" in b for b in bert.bodies()), "line")
        edit = event_with(bert, agents_room, "* Ticket #1 · in Bearbeitung")
        relation = edit.source["content"]["m.relates_to"]
        assert relation == {"rel_type": "m.replace", "event_id": card.event_id}
        assert bert.account.user_id in edit.source["content"]["m.new_content"]["body"]

        # Bert replies to the card; Anna gets his words exactly.
        answer = "Guten Tag!\nBitte öffnen Sie <Konten-Einstellungen> & prüfen Sie Port 993."
        await reply(bert, agents_room, card.event_id, answer)
        await anna.until(lambda: any(answer in b for b in anna.bodies()), "the agent's answer")

        # Anna's message reaches the agents as a reply to the card; Lotse stays silent.
        start = len(anna.received)
        await anna.say(room, "Da steht jetzt etwas von einem Zertifikat.")
        await bert.until(
            lambda: any("#1 Nutzer: Da steht jetzt" in b for b in bert.bodies()), "relay"
        )
        relayed = event_with(bert, agents_room, "#1 Nutzer: Da steht jetzt")
        assert relayed.source["content"]["m.relates_to"] == {
            "m.in_reply_to": {"event_id": card.event_id}
        }
        await anna.until(lambda: bool(anna.bodies(start)), "the note where it went")
        assert anna.bodies(start) == [
            "Ihre Nachricht ist beim Helpdesk angekommen. Die Antwort bekommen Sie hier im Chat."
        ]  # once, and no answer from Lotse

        # A reply to the relayed message finds the ticket as well.
        await reply(bert, agents_room, relayed.event_id, "Bitte nehmen Sie es nicht an.")
        await anna.until(
            lambda: any("Bitte nehmen Sie es nicht an." in b for b in anna.bodies()), "reply"
        )

        # A refusal, then the hand-back to the start of a guide; Lotse answers Anna again.
        await bert.say(agents_room, "!anleitung 7 thunderbird")
        await bert.until(
            lambda: any("Ein Ticket Nr. 7 gibt es nicht." in b for b in bert.bodies()), "refusal"
        )
        start = len(anna.received)
        await bert.say(agents_room, "!anleitung 1 thunderbird")
        await anna.until(
            lambda: any("Schritt 1 von 5" in b for b in anna.bodies(start)), "the guide again"
        )
        assert any("wieder an mich, Lotse, übergeben" in b for b in anna.bodies(start))
        await anna.ask(room, "1", "Schritt 2 von 5")

        # Anna's direct chat is remembered for answers after a restart.
        remembered = json.loads((directory / "store" / DIRECT_ROOMS_FILE).read_text())
        assert remembered == {anna.account.user_id: room}
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_agents_on_telegram_and_on_matrix_see_each_others_answers_and_one_card_each(
    synapse_server: SynapseServer, bert: MatrixUser, telegram_api: FakeTelegram, tmp_path: Path
) -> None:
    """`lotse serve` with both agents' chats: Carla works in the Telegram group, Bert in the
    Matrix room, Anna writes on Telegram."""
    api = telegram_api
    lotse = synapse_server.new_account("lotse")
    agents_room = (await bert.client.room_create(name="Helpdesk", invite=[lotse.user_id])).room_id
    settings = bot_settings(synapse_server, lotse, agents_room, tmp_path).model_copy(
        update={
            "telegram_token": SecretStr(api.token),
            "telegram_base_url": api.base_url,
            "telegram_agent_chat": AGENT_CHAT,
        }
    )
    stop = asyncio.Event()
    task = asyncio.create_task(serve_all(settings, http=False, stop=stop))
    try:
        await bert.until(
            lambda: lotse.user_id in getattr(bert.client.rooms.get(agents_room), "users", {}),
            "Lotse to join the agents' room",
        )
        await bert.ask(agents_room, "!tickets", "Keine offenen Tickets.")  # Lotse reads it
        anna = TelegramChat(api, ANNA)
        carla = TelegramChat(api, CARLA, chat=api.group_chat(AGENT_CHAT))
        await anna.say("Thunderbird 60")
        await anna.say("/mensch", mentions("Nummer 1"))
        await api.wait_for(
            lambda: any(m.text.startswith("Ticket #1") for m in api.messages_to(AGENT_CHAT)),
            "the card in the Telegram group",
        )
        telegram_card = next(m for m in api.messages_to(AGENT_CHAT) if "Ticket #1" in m.text)
        await bert.until(lambda: any("Ticket #1" in b for b in bert.bodies()), "the Matrix card")
        matrix_card = event_with(bert, agents_room, "Ticket #1")

        # Bert takes the ticket on Matrix: the Telegram card says so too.
        user_id = bert.account.user_id
        bert_name = f"{user_id[1:].partition(':')[0]} ({user_id})"  # display name (id)
        await bert.say(agents_room, "!nehmen 1")
        await api.wait_for(
            lambda: f"Übernommen von {bert_name}." in telegram_card.text,
            "the Telegram card to change",
        )
        assert telegram_card.text.startswith("Ticket #1 · in Bearbeitung")

        # Bert answers on Matrix: Anna gets it, Carla sees it under the Telegram card.
        carla.seen = len(api.messages_to(AGENT_CHAT))
        await bert.say(agents_room, "!antwort 1 Bitte prüfen Sie Port 993.")
        await anna.replies(mentions("Bitte prüfen Sie Port 993."))
        from_bert = await carla.replies(mentions("über Matrix: Bitte prüfen Sie Port 993."))
        assert from_bert[-1].text == (
            f"#1 Antwort von {bert_name} über Matrix: Bitte prüfen Sie Port 993."
        )
        assert from_bert[-1].data["reply_to_message"]["message_id"] == telegram_card.message_id

        # Bert hands Anna back to Lotse; Carla answers her next on Telegram and so takes the
        # ticket: Bert sees her answer under the Matrix card, and the card names her.
        await bert.say(agents_room, "!anleitung 1")
        await api.wait_for(lambda: "zurück bei Lotse" in telegram_card.text, "handed back")
        carla.send("Und dann auf „Weiter“ klicken.", reply_to=telegram_card)
        await anna.replies(mentions("Und dann auf „Weiter“ klicken."))
        mirrored = "#1 Antwort von Carla (2002) über Telegram: Und dann auf „Weiter“ klicken."
        await bert.until(lambda: any(mirrored in b for b in bert.bodies()), "Carla's answer")
        shown = event_with(bert, agents_room, mirrored)
        assert shown.source["content"]["m.relates_to"] == {
            "m.in_reply_to": {"event_id": matrix_card.event_id}
        }
        await bert.until(
            lambda: any(
                b.startswith("* Ticket #1 · in Bearbeitung") and "Übernommen von Carla" in b
                for b in bert.bodies()
            ),
            "the Matrix card to name Carla",
        )

        # Carla closes with the button on Telegram: the Matrix card is closed too.
        carla.press("Schließen", telegram_card)
        await bert.until(
            lambda: any(b.startswith("* Ticket #1 · geschlossen") for b in bert.bodies()),
            "the Matrix card to be closed",
        )
        closed = event_with(bert, agents_room, "* Ticket #1 · geschlossen")
        assert closed.source["content"]["m.relates_to"] == {
            "rel_type": "m.replace",
            "event_id": matrix_card.event_id,
        }
        # Nobody's own answer is repeated in their own chat.
        assert not any("über Telegram" in m.text for m in api.messages_to(AGENT_CHAT))
        assert not any("über Matrix" in b for b in bert.bodies())
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 30) == 0


async def test_a_stopped_matrix_channel_sends_nothing_more_through_its_closed_client(
    synapse_server: SynapseServer, bert: MatrixUser, tmp_path: Path
) -> None:
    # As when another instance takes the Matrix lease: pushes to Matrix users and the agents'
    # room must go through the channel outbox again, not to this process's closed client.
    lotse = synapse_server.new_account("lotse")
    agents_room = (await bert.client.room_create(name="Helpdesk", invite=[lotse.user_id])).room_id
    app = await build_app(bot_settings(synapse_server, lotse, agents_room, tmp_path))
    service = app.service
    desk = app.desk
    ready = asyncio.Event()
    settings = bot_settings(synapse_server, lotse, agents_room, tmp_path)
    task = asyncio.ensure_future(serve_matrix(settings, app, on_ready=ready.set))
    try:
        await asyncio.wait_for(ready.wait(), 60)
        assert app.tickets.sender_for("matrix") is not None
        assert "matrix" in desk.chat_names
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert app.tickets.sender_for("matrix") is None
    assert "matrix" not in desk.chat_names
    await service.close()


def bot_settings(
    server: SynapseServer,
    lotse: MatrixAccount,
    agents_room: str,
    tmp_path: Path,
    store_dir: Path | None = None,
) -> Settings:
    """The bot on Matrix with an agents' room, on SQLite, understanding by the lexicon."""
    return Settings(
        _env_file=None,
        matrix_homeserver=server.url,
        matrix_user=lotse.user_id,
        matrix_password=SecretStr(lotse.password),
        matrix_store_dir=store_dir or tmp_path / "bot-store",
        matrix_agent_room=agents_room,
        database_url=f"sqlite:///{tmp_path / 'lotse.sqlite3'}",
        nlu="lexicon",
        locale="de",
    )


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[None]:
    """`lotse matrix` running until the block ends (a restart is two blocks)."""
    task = asyncio.ensure_future(serve_matrix(settings))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


HINT = "Bitte antworten Sie auf die Karte eines Tickets oder schreiben Sie /antwort N Text."
NOT_AN_AGENT = (
    "Tickets bearbeiten können hier nur Mitglieder ab Berechtigungsstufe 50 (Moderation). "
    "Bitte wenden Sie sich an die Verwaltung dieses Raums."
)


async def test_replies_to_the_list_reach_no_user_and_members_without_power_are_no_agents(
    synapse_server: SynapseServer, anna: MatrixUser, bert: MatrixUser, tmp_path: Path
) -> None:
    """Bert made the agents' room (power 100); Mallory was invited into it (power 0)."""
    lotse = synapse_server.new_account("lotse")
    mallory = await matrix_user(synapse_server, tmp_path, "mallory")
    created = await bert.client.room_create(
        name="Helpdesk", invite=[lotse.user_id, mallory.account.user_id]
    )
    agents_room = created.room_id
    await mallory.client.join(agents_room)
    settings = bot_settings(synapse_server, lotse, agents_room, tmp_path)

    def hints() -> int:
        return sum(body == HINT for body in bert.bodies())

    try:
        async with serving(settings):
            room = await anna.open_direct_chat(lotse.user_id, encrypted=False)
            await anna.until(lambda: any(GREETING in b for b in anna.bodies()), "the greeting")
            await anna.ask(room, "!mensch", "Nummer 1")
            await bert.until(lambda: any("Ticket #1" in b for b in bert.bodies()), "the card")
            seen_by_anna = len(anna.received)

            # The reviewer's case: the list names "#1"; replying to it answers nobody.
            await bert.ask(agents_room, "!tickets", "Offene Tickets:")
            listing = event_with(bert, agents_room, "Offene Tickets:")
            assert "\n#1 · neu" in listing.body
            await reply(bert, agents_room, listing.event_id, "Das übernehme ich.")
            await bert.until(lambda: hints() == 1, "the hint")
            await bert.ask(agents_room, "!hilfe", "So bearbeiten Sie Tickets hier:")
            help_text = event_with(bert, agents_room, "So bearbeiten Sie Tickets hier:")
            await reply(bert, agents_room, help_text.event_id, "Ich nehme die 1.")
            await bert.until(lambda: hints() == 2, "the hint again")

            # Mallory joined the room but is no moderator: refused once, then ignored.
            await mallory.say(agents_room, "!nehmen 1")
            await bert.until(lambda: NOT_AN_AGENT in bert.bodies(), "the refusal")
            await mallory.say(agents_room, "!antwort 1 Bitte schicken Sie mir Ihr Passwort.")
            await reply(mallory, agents_room, listing.event_id, "Ihr Passwort bitte.")
            # Bert's next command is answered after Mallory's messages were handled.
            await bert.ask(agents_room, "!tickets", "bei niemand")
            assert bert.bodies().count(NOT_AN_AGENT) == 1

        # After a restart the bot reads the replied-to message from the homeserver: the list
        # still answers nobody, while the card posted before the restart still works.
        async with serving(settings):
            await reply(bert, agents_room, listing.event_id, "Das übernehme ich.")
            await bert.until(lambda: hints() == 3, "the hint after the restart")
            card = event_with(bert, agents_room, "Ticket #1")
            await reply(bert, agents_room, card.event_id, "Guten Tag, hier ist der Helpdesk.")
            await anna.until(
                lambda: any("hier ist der Helpdesk" in b for b in anna.bodies()), "the answer"
            )
        replies_to_anna = anna.bodies(seen_by_anna)
        assert not any("Passwort" in b or "übernehme" in b for b in replies_to_anna)
        assert any("Guten Tag, hier ist der Helpdesk." in b for b in replies_to_anna)
    finally:
        await mallory.close()


def test_only_rooms_of_version_12_and_later_give_their_creators_unlimited_power() -> None:
    def create(version: str, **more: Any) -> dict[str, Any]:
        content = {"room_version": version, **more}
        return {"type": "m.room.create", "state_key": "", "sender": "@bert:uni", "content": content}

    others = {"type": "m.room.member", "state_key": "@carla:uni", "sender": "@carla:uni"}
    assert privileged_creators([others, create("12")]) == {"@bert:uni"}
    assert privileged_creators([create("12", additional_creators=["@carla:uni"])]) == {
        "@bert:uni",
        "@carla:uni",
    }
    # Before version 12 the creator's power is an ordinary power-level entry.
    assert privileged_creators([create("10")]) == frozenset()
    assert privileged_creators([create("org.example.custom")]) == frozenset()
    assert privileged_creators([others]) == frozenset()


async def test_a_users_deleted_messages_are_redacted_from_the_agents_room(
    synapse_server: SynapseServer, anna: MatrixUser, bert: MatrixUser, tmp_path: Path
) -> None:
    lotse = synapse_server.new_account("lotse")
    agents_room = (await bert.client.room_create(name="Helpdesk", invite=[lotse.user_id])).room_id
    async with serving(bot_settings(synapse_server, lotse, agents_room, tmp_path)):
        room = await anna.open_direct_chat(lotse.user_id, encrypted=False)
        await anna.until(lambda: any(GREETING in body for body in anna.bodies()), "the greeting")
        await anna.ask(room, "!mensch", "Nummer 1")
        await bert.until(lambda: any("Ticket #1" in b for b in bert.bodies()), "the ticket card")
        card = event_with(bert, agents_room, "Ticket #1")
        await bert.say(agents_room, "!nehmen 1")
        await anna.until(lambda: any("übernommen" in b for b in anna.bodies()), "taken")
        await anna.say(room, "Mein Rechner heißt Zebrafink")
        await bert.until(lambda: any("Zebrafink" in b for b in bert.bodies()), "the relay")
        relayed = event_with(bert, agents_room, "Zebrafink")

        await anna.ask(room, "!loeschen", "Ja, alles löschen")
        await anna.ask(room, "1", "Erledigt")
        await bert.until(
            lambda: any("Der Nutzer hat seine Daten löschen lassen" in b for b in bert.bodies()),
            "the line that says so",
        )
        gone = await bert.client.room_get_event(agents_room, relayed.event_id)
        assert "redacted_because" in gone.event.source.get("unsigned", {}), gone.event.source
        assert "Zebrafink" not in json.dumps(gone.event.source)
        kept = await bert.client.room_get_event(agents_room, card.event_id)
        assert "redacted_because" not in kept.event.source.get("unsigned", {})
