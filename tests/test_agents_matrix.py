"""The agents' chat on Matrix, end to end against a real Synapse (`tests/servers/synapse.py`):
the bot runs `serve` (what `lotse matrix` runs) with an agents' room; a helpdesk agent and a
user are real matrix-nio clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from nio import RoomSendResponse  # type: ignore[import-untyped]
from pydantic import SecretStr

from bot.agents.matrix import DIRECT_ROOMS_FILE
from bot.channels.matrix import serve
from bot.config import Settings
from tests.servers.synapse import MatrixAccount, SynapseServer
from tests.test_matrix import GREETING, MatrixUser

pytestmark = pytest.mark.slow


def _account(server: SynapseServer, role: str) -> MatrixAccount:
    return server.register_user(f"{role}-{secrets.token_hex(4)}", secrets.token_urlsafe(12))


async def _user(server: SynapseServer, tmp_path: Path, role: str) -> MatrixUser:
    store = tmp_path / role
    store.mkdir()
    return await MatrixUser.log_in(server, _account(server, role), store)


@pytest.fixture
async def anna(synapse_server: SynapseServer, tmp_path: Path) -> AsyncIterator[MatrixUser]:
    user = await _user(synapse_server, tmp_path, "anna")
    yield user
    await user.close()


@pytest.fixture
async def bert(synapse_server: SynapseServer, tmp_path: Path) -> AsyncIterator[MatrixUser]:
    """A helpdesk agent."""
    user = await _user(synapse_server, tmp_path, "bert")
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
    lotse = _account(synapse_server, "lotse")
    agents_room = (await bert.client.room_create(name="Helpdesk", invite=[lotse.user_id])).room_id
    directory = tmp_path / "bot"
    settings = Settings(
        _env_file=None,
        matrix_homeserver=synapse_server.url,
        matrix_user=lotse.user_id,
        matrix_password=SecretStr(lotse.password),
        matrix_store_dir=directory / "store",
        matrix_agent_room=agents_room,
        database_url=f"sqlite:///{tmp_path / 'lotse.sqlite3'}",
        nlu="lexicon",
        locale="de",
    )
    task = asyncio.ensure_future(serve(settings))
    try:
        room = await anna.open_direct_chat(lotse.user_id, encrypted=False)
        await anna.until(lambda: any(GREETING in body for body in anna.bodies()), "the greeting")
        await anna.ask(room, "Thunderbird", "Schritt 1 von 5")
        await anna.ask(room, "!mensch", "Nummer 1")

        await bert.until(lambda: any("Ticket #1" in b for b in bert.bodies()), "the ticket card")
        card = event_with(bert, agents_room, "Ticket #1")
        assert "Programm: Thunderbird, Anleitung thunderbird, Schritt 1" in card.body
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
        assert anna.bodies(start) == []

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
