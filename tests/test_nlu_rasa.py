"""Against a real Rasa server trained on nlu/ (tests/servers/rasa.py): accuracy on the held-out
set, and a conversation that survives the server going away."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.conversation import ConversationService
from bot.knowledge.base import KnowledgeBase
from bot.storage.store import Store
from bot.understanding.evaluation import Report, evaluate_backend, load_examples
from bot.understanding.lexicon import LexiconUnderstander
from bot.understanding.rasa import RasaUnderstander
from bot.understanding.training_data import NLU_DIR
from tests.servers.rasa import RasaServer
from tests.support import Chat

pytestmark = pytest.mark.slow

HELD_OUT = NLU_DIR / "tests" / "test_nlu.yml"


@pytest.fixture(scope="module")
async def reports(rasa_server: RasaServer, knowledge: KnowledgeBase) -> dict[str, Report]:
    rasa_server.start()
    examples = load_examples(HELD_OUT, knowledge)
    return {
        backend: await evaluate_backend(backend, examples, knowledge, rasa_server.url)
        for backend in ("lexicon", "rasa", "combined")
    }


async def test_combined_understanding_meets_the_accuracy_targets_on_the_held_out_set(
    reports: dict[str, Report],
) -> None:
    combined = reports["combined"]
    details = combined.format()
    assert combined.intent_accuracy >= 0.92, details
    assert combined.guide_accuracy >= 0.97, details


async def test_combined_understanding_is_at_least_as_good_as_the_lexicon_alone(
    reports: dict[str, Report],
) -> None:
    for backend, report in reports.items():
        print(backend, report.summary())
    combined, lexicon = reports["combined"], reports["lexicon"]
    assert combined.intent_accuracy >= lexicon.intent_accuracy
    assert combined.macro_f1 >= lexicon.macro_f1
    assert combined.guide_accuracy >= lexicon.guide_accuracy


async def test_rasa_understands_what_the_lexicon_cannot(
    rasa_url: str, knowledge: KnowledgeBase
) -> None:
    nlu = RasaUnderstander(knowledge, rasa_url, timeout=5.0)
    # Bavarian thanks: in Rasa's training data, in none of the lexicon's patterns.
    assert LexiconUnderstander(knowledge).understand_now("vergelts gott").intent != "thank"
    assert (await nlu.understand("vergelts gott")).intent == "thank"
    assert (await nlu.understand("servus, bin der Neue und hab Outlook 2016")).guide == (
        "outlook-2010-2016"
    )
    await nlu.aclose()


@pytest.fixture
async def rasa_service(
    rasa_url: str, knowledge: KnowledgeBase, sqlite_url: str
) -> AsyncIterator[ConversationService]:
    # A generous deadline: the first parses are slow on a busy 2-core machine.
    nlu = RasaUnderstander(knowledge, rasa_url, timeout=5.0)
    service = ConversationService(await Store.open(sqlite_url), knowledge, nlu)
    yield service
    await service.store.close()
    await nlu.aclose()


# Keep this test last in the module: it stops the server (`rasa_url` would start it again).
async def test_a_conversation_goes_on_with_the_lexicon_when_rasa_stops_midway(
    rasa_service: ConversationService, rasa_server: RasaServer, knowledge: KnowledgeBase
) -> None:
    nlu = rasa_service.understander
    assert isinstance(nlu, RasaUnderstander)
    chat = Chat(rasa_service)
    steps = len(knowledge.guides["thunderbird"].steps)

    await chat.say("Moin")
    assert "Welches Mailprogramm benutzen Sie?" in chat.text
    await chat.say("ich hab Thunderbird 60")
    assert f"Schritt 1 von {steps}" in chat.text
    await chat.say("hat geklappt")  # only Rasa knows this one
    assert f"Schritt 2 von {steps}" in chat.text

    rasa_server.stop()

    await chat.say("weiter")
    assert f"Schritt 3 von {steps}" in chat.text
    await chat.say("zurück")
    assert f"Schritt 2 von {steps}" in chat.text
    for _ in range(steps - 1):
        await chat.say("weiter")
    assert "das war der letzte Schritt" in chat.text
    assert nlu.breaker.is_open
