"""Admins edit the knowledge base while the bot runs: live reload without stranding anyone."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app import App
from bot.conversation import ConversationService
from bot.knowledge.base import KnowledgeBase
from bot.knowledge.registry import KnowledgeRegistry, ReloadOutcome
from bot.storage.store import Store
from bot.tickets.service import TicketService
from bot.understanding.lexicon import LexiconUnderstander
from tests.support import KNOWLEDGE_DIR, Chat, UserInbox, open_app

OLD_STEP = 'Klicken Sie auf "Weitere Einstellungen".'
NEW_STEP = 'Klicken Sie unten rechts auf "Weitere Einstellungen ...".'


@pytest.fixture
def kb_dir(tmp_path: Path) -> Path:
    target = tmp_path / "knowledge"
    shutil.copytree(KNOWLEDGE_DIR, target)
    return target


@pytest.fixture
async def live_app(
    request: pytest.FixtureRequest, kb_dir: Path, sqlite_url: str
) -> AsyncIterator[App]:
    """An app on a copy of the knowledge that the test edits and reloads; with tickets when
    the test asks for `live_tickets`."""
    registry = KnowledgeRegistry.load(kb_dir)
    app = await open_app(sqlite_url, registry, tickets="live_tickets" in request.fixturenames)
    yield app
    await app.close()


@pytest.fixture
def live(live_app: App) -> ConversationService:
    return live_app.service


@pytest.fixture
def live_tickets(live_app: App) -> TicketService:
    return live_app.tickets


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


async def test_a_conversation_mid_guide_finishes_on_its_revision_and_a_new_one_gets_the_edit(
    live: ConversationService, kb_dir: Path
) -> None:
    anna = Chat(live, user="anna")
    await anna.say("Outlook 2007")
    await anna.say("weiter")
    assert "Schritt 2 von 4" in anna.text

    _edit(kb_dir / "outlook.yaml", OLD_STEP, NEW_STEP)
    outcome = live.registry.reload()
    assert outcome is not None and not outcome.rejected
    assert {"outlook-2003", "outlook-2007", "outlook-2010-2016"} <= set(outcome.changed_guides)

    await anna.say("weiter")
    assert OLD_STEP in anna.text  # Anna's guide keeps the revision she started with

    ben = Chat(live, user="ben")
    await ben.say("Outlook 2007")
    await ben.say("weiter")
    await ben.say("weiter")
    assert NEW_STEP in ben.text

    await anna.say("weiter")
    await anna.say("weiter")  # finished; the next guide starts on the new revision
    await anna.say("von vorne")
    await anna.say("Outlook 2007")
    await anna.say("weiter")
    await anna.say("weiter")
    assert NEW_STEP in anna.text


async def test_a_broken_edit_is_rejected_and_the_bot_keeps_the_last_good_revision(
    live: ConversationService, kb_dir: Path
) -> None:
    seen: list[ReloadOutcome] = []
    live.registry.on_reload(lambda outcome, _current: seen.append(outcome))
    good = live.knowledge.revision
    (kb_dir / "ios.yaml").write_text("program: [unclosed\n", encoding="utf-8")

    outcome = live.registry.reload()
    assert outcome is not None and outcome.rejected
    assert "ios.yaml:2: YAML syntax error" in outcome.message()
    assert "abgelehnt" in outcome.message()
    assert seen == [outcome]
    assert live.knowledge.revision == good
    assert live.registry.reload() is None  # the same broken state is reported once

    chat = Chat(live)
    await chat.say("iPhone mit iOS 12")
    assert "Apple iPhone (iOS 12) – Schritt 1 von 5" in chat.text


async def test_a_new_alias_is_understood_right_after_the_reload(
    live: ConversationService, kb_dir: Path
) -> None:
    _edit(kb_dir / "thunderbird.yaml", "'TB'", "'TB', 'Betterbird'")
    live.registry.reload()
    chat = Chat(live)
    await chat.say("Betterbird 60")
    assert "Mozilla Thunderbird (60.3.1) – Schritt 1 von 5" in chat.text


async def test_the_running_bot_notices_an_edit_by_itself(
    live: ConversationService, kb_dir: Path
) -> None:
    reloaded = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_reload(_outcome: object, current: KnowledgeBase) -> None:  # in a worker thread
        if current.guides["outlook-2003"].steps[2].text == NEW_STEP:
            loop.call_soon_threadsafe(reloaded.set)

    live.registry.on_reload(on_reload)
    live.watch_knowledge(interval=0.05)
    _edit(kb_dir / "outlook.yaml", OLD_STEP, NEW_STEP)
    await asyncio.wait_for(reloaded.wait(), 5)
    assert live.knowledge.guides["outlook-2003"].steps[2].text == NEW_STEP


async def test_a_conversation_whose_guide_vanished_after_a_restart_starts_over_politely(
    kb_dir: Path, sqlite_url: str, knowledge: KnowledgeBase
) -> None:
    first = ConversationService(
        await Store.open(sqlite_url), knowledge, LexiconUnderstander(knowledge)
    )
    await Chat(first).say("Android")
    await first.close()

    android = kb_dir / "android.yaml"
    _edit(android, "  - id: android\n", "  - id: android-6\n")
    changed = KnowledgeRegistry.load(kb_dir).current
    second = ConversationService(
        await Store.open(sqlite_url), changed, LexiconUnderstander(changed)
    )
    chat = Chat(second)
    await chat.say("weiter")
    assert "gibt es in dieser Form nicht mehr" in chat.text
    assert "Welches Mailprogramm benutzen Sie?" in chat.text
    await second.close()


async def test_a_user_handed_back_mid_guide_after_an_edit_continues_on_their_revision(
    live: ConversationService, live_tickets: TicketService, kb_dir: Path
) -> None:
    inbox = UserInbox()
    tickets = live_tickets
    tickets.register_user_sender("test", inbox.send)
    anna = Chat(live, user="anna")
    await anna.say("Outlook 2007")
    await anna.say("weiter")
    await anna.say("weiter")
    assert OLD_STEP in anna.text
    await anna.command("mensch")
    await tickets.take(1, "Petra")

    _edit(kb_dir / "outlook.yaml", OLD_STEP, NEW_STEP)
    outcome = live.registry.reload()
    assert outcome is not None and not outcome.rejected

    await tickets.hand_back(1, "Petra", None)  # back to where she was, not to a new guide
    assert OLD_STEP in inbox.text("anna")
    assert NEW_STEP not in inbox.text("anna")
