"""The Rasa back end's behaviour without Rasa: against a small fake `/model/parse` on loopback
and against a port where nothing listens. The real server is in tests/test_nlu_rasa.py."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from bot.app import build_understander
from bot.config import Settings
from bot.knowledge.base import KnowledgeBase
from bot.understanding.rasa import CircuitBreaker, RasaParse, RasaUnderstander


@dataclass
class FakeRasa:
    """Answers `/model/parse` with `ranking` (and `entities`), after `delay` seconds."""

    url: str = ""
    ranking: list[tuple[str, float]] = field(default_factory=lambda: [("greet", 0.99)])
    entities: list[dict[str, Any]] = field(default_factory=list)
    delay: float = 0.0
    status: int = 200
    requests: list[str] = field(default_factory=list)

    async def parse(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body["text"])
        await asyncio.sleep(self.delay)
        if self.status != 200:
            return web.Response(status=self.status, text="boom")
        ranking = [{"name": name, "confidence": conf} for name, conf in self.ranking]
        return web.json_response(
            {
                "text": body["text"],
                "intent": ranking[0],
                "entities": self.entities,
                "intent_ranking": ranking,
            }
        )


@pytest.fixture
async def fake_rasa() -> AsyncIterator[FakeRasa]:
    fake = FakeRasa()
    app = web.Application()
    app.router.add_post("/model/parse", fake.parse)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    fake.url = f"http://127.0.0.1:{port}"
    yield fake
    await runner.cleanup()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# Tests that expect Rasa's answer give it time (a loaded machine answers a loopback call late);
# tests of the slow path pass a short deadline and a longer delay.
ANSWERS = 5.0
TOO_SLOW = 0.3


def understander(
    knowledge: KnowledgeBase,
    url: str,
    breaker: CircuitBreaker | None = None,
    timeout: float = ANSWERS,
) -> RasaUnderstander:
    return RasaUnderstander(knowledge, url, timeout=timeout, breaker=breaker)


# --- deciding with Rasa's answer ---------------------------------------------------------


async def test_rasa_decides_the_intent_the_lexicon_does_not_know(
    knowledge: KnowledgeBase, fake_rasa: FakeRasa
) -> None:
    fake_rasa.ranking = [("request_check", 0.97), ("step_problem", 0.02)]
    nlu = understander(knowledge, fake_rasa.url)
    result = await nlu.understand("guck mal ob da drüben alles heil ist")
    assert (result.intent, result.alternative) == ("request_check", None)
    assert fake_rasa.requests == ["guck mal ob da drüben alles heil ist"]
    await nlu.aclose()


async def test_the_lexicon_resolves_program_version_and_guide_under_rasas_intent(
    knowledge: KnowledgeBase, fake_rasa: FakeRasa
) -> None:
    fake_rasa.ranking = [("step_problem", 0.95), ("inform", 0.03)]
    fake_rasa.entities = [{"entity": "client", "value": "Lotus"}]  # nothing the bot knows
    nlu = understander(knowledge, fake_rasa.url)
    result = await nlu.understand("in outlok 2013 finde ich das nicht")
    assert result.intent == "step_problem"
    assert result.entities == {"client": "outlook", "version": "2013"}
    assert result.guide == "outlook-2010-2016"
    await nlu.aclose()


async def test_a_program_named_with_a_greeting_is_an_answer_not_a_greeting(
    knowledge: KnowledgeBase, fake_rasa: FakeRasa
) -> None:
    fake_rasa.ranking = [("greet", 0.99)]
    nlu = understander(knowledge, fake_rasa.url)
    result = await nlu.understand("Moin, Thunderbird 60 hier")
    assert (result.intent, result.guide) == ("inform", "thunderbird")
    await nlu.aclose()


async def test_a_ticket_on_rasas_word_alone_waits_for_the_lexicon_to_agree(
    knowledge: KnowledgeBase, fake_rasa: FakeRasa
) -> None:
    fake_rasa.ranking = [("request_human", 0.96), ("greet", 0.02)]
    nlu = understander(knowledge, fake_rasa.url)
    result = await nlu.understand("Hallo, ich bin Mitarbeiterin am Institut")
    assert result.intent == "greet"
    result = await nlu.understand("Hallo, ich möchte eine Mitarbeiterin sprechen")
    assert result.intent == "request_human"
    result = await nlu.understand("Bearbeiten ist bei mir grau")  # a complaint: no ticket
    assert result.intent == "step_problem"
    await nlu.aclose()


async def test_a_goodbye_or_a_ticket_on_rasas_word_alone_yields_to_an_answer_or_a_question(
    knowledge: KnowledgeBase, fake_rasa: FakeRasa
) -> None:
    fake_rasa.ranking = [("goodbye", 0.9), ("affirm", 0.05)]
    nlu = understander(knowledge, fake_rasa.url)
    result = await nlu.understand("mir wurscht")  # "any answer will do", no goodbye
    assert (result.intent, result.entities.get("answer")) == ("inform", "any")
    result = await nlu.understand("tschüss")
    assert result.intent == "goodbye"
    fake_rasa.ranking = [("request_human", 0.66), ("ask_explanation", 0.2)]
    result = await nlu.understand("what's my username supposed to be?")
    assert result.intent == "ask_explanation"
    await nlu.aclose()


async def test_rasas_entities_fill_what_the_lexicon_missed(
    knowledge: KnowledgeBase, fake_rasa: FakeRasa
) -> None:
    fake_rasa.ranking = [("inform", 0.9)]
    fake_rasa.entities = [
        {"entity": "client", "value": "ios"},
        {"entity": "version", "value": "12"},
        {"entity": "security", "value": "STARTTLS"},
    ]
    nlu = understander(knowledge, fake_rasa.url)
    result = await nlu.understand("mein eifon zwölf")
    assert result.entities == {"client": "ios", "version": "12", "security": "starttls"}
    assert result.guide == "ios"
    await nlu.aclose()


@pytest.mark.parametrize(
    "ranking",
    [
        [("nlu_fallback", 0.5), ("request_human", 0.35), ("greet", 0.3)],
        [("request_human", 0.4), ("greet", 0.1)],
    ],
    ids=["nlu_fallback", "low_confidence"],
)
async def test_below_the_threshold_the_lexicon_decides(
    knowledge: KnowledgeBase, fake_rasa: FakeRasa, ranking: list[tuple[str, float]]
) -> None:
    fake_rasa.ranking = ranking
    nlu = understander(knowledge, fake_rasa.url)
    result = await nlu.understand("weiter")
    assert (result.intent, result.alternative) == ("next_step", None)
    await nlu.aclose()


async def test_two_close_intents_become_a_question_with_both(
    knowledge: KnowledgeBase, fake_rasa: FakeRasa
) -> None:
    fake_rasa.ranking = [("nlu_fallback", 0.6), ("request_human", 0.52), ("bot_challenge", 0.45)]
    nlu = understander(knowledge, fake_rasa.url)
    result = await nlu.understand("gibts euch auch in echt")
    assert (result.intent, result.alternative) == ("request_human", "bot_challenge")
    await nlu.aclose()


async def test_a_close_call_the_lexicon_backs_needs_no_question(
    knowledge: KnowledgeBase, fake_rasa: FakeRasa
) -> None:
    fake_rasa.ranking = [("affirm", 0.52), ("next_step", 0.47)]
    nlu = understander(knowledge, fake_rasa.url)
    result = await nlu.understand("erledigt")
    assert (result.intent, result.alternative) == ("next_step", None)
    await nlu.aclose()


def test_rasas_parse_answer_is_read_with_its_ranking_and_entities() -> None:
    parse = RasaParse.from_json(
        {
            "text": "outlook",
            "intent": {"name": "inform", "confidence": 0.98},
            "entities": [{"entity": "client", "value": "outlook", "start": 0, "end": 7}],
            "intent_ranking": [
                {"name": "inform", "confidence": 0.98},
                {"name": "nlu_fallback", "confidence": 0.5},
                {"name": "no_such_intent", "confidence": 0.01},
            ],
        }
    )
    assert (parse.intent, parse.confidence) == ("inform", 0.98)
    assert parse.real_ranking() == [("inform", 0.98)]
    assert [(e.entity, e.value) for e in parse.entities] == [("client", "outlook")]


# --- outages -----------------------------------------------------------------------------


async def test_with_nothing_listening_the_lexicon_answers(knowledge: KnowledgeBase) -> None:
    nlu = understander(knowledge, closed_port_url())
    result = await nlu.understand("outlok 2013")
    assert (result.intent, result.guide) == ("inform", "outlook-2010-2016")
    await nlu.aclose()


async def test_a_slow_rasa_is_not_waited_for(knowledge: KnowledgeBase, fake_rasa: FakeRasa) -> None:
    fake_rasa.ranking = [("request_human", 0.99)]
    fake_rasa.delay = 2.0
    nlu = understander(knowledge, fake_rasa.url, timeout=TOO_SLOW)
    loop = asyncio.get_running_loop()
    began = loop.time()
    result = await nlu.understand("weiter")
    assert loop.time() - began < 1.0
    assert result.intent == "next_step"
    await nlu.aclose()


async def test_server_errors_count_as_failures_and_the_lexicon_answers(
    knowledge: KnowledgeBase, fake_rasa: FakeRasa
) -> None:
    fake_rasa.status = 500
    breaker = CircuitBreaker(threshold=2)
    nlu = understander(knowledge, fake_rasa.url, breaker)
    assert (await nlu.understand("zurück")).intent == "previous_step"
    assert (await nlu.understand("zurück")).intent == "previous_step"
    assert breaker.is_open
    await nlu.aclose()


async def test_after_repeated_failures_rasa_is_left_alone_and_retried_later(
    knowledge: KnowledgeBase, fake_rasa: FakeRasa
) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=3, retry_after=30, clock=clock)
    fake_rasa.delay = 1.0  # every call times out
    nlu = understander(knowledge, fake_rasa.url, breaker, timeout=TOO_SLOW)
    for _ in range(3):
        assert (await nlu.understand("weiter")).intent == "next_step"
    assert breaker.is_open
    assert len(fake_rasa.requests) == 3

    clock.now += 10  # open: no calls at all, the lexicon answers at once
    assert (await nlu.understand("weiter")).intent == "next_step"
    assert len(fake_rasa.requests) == 3

    clock.now += 25  # time for one trial; it fails, so the breaker stays open
    await nlu.understand("weiter")
    assert len(fake_rasa.requests) == 4
    await nlu.understand("weiter")
    assert len(fake_rasa.requests) == 4

    fake_rasa.delay = 0.0  # Rasa is back: the next trial closes the breaker
    fake_rasa.ranking = [("request_check", 0.99)]
    clock.now += 31
    assert (await nlu.understand("schau mal nach")).intent == "request_check"
    assert not breaker.is_open
    assert (await nlu.understand("und nochmal schauen")).intent == "request_check"
    assert len(fake_rasa.requests) == 6
    await nlu.aclose()


def test_one_trial_at_a_time_while_the_breaker_is_half_open() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=1, retry_after=5, clock=clock)
    breaker.record_failure()
    assert not breaker.allow()
    clock.now += 5
    assert breaker.allow()
    assert not breaker.allow()  # the first trial is still running
    breaker.record_success()
    assert breaker.allow() and breaker.allow()


def test_lotse_nlu_rasa_builds_the_rasa_back_end(knowledge: KnowledgeBase) -> None:
    settings = Settings(nlu="rasa", rasa_url="http://127.0.0.1:5999", rasa_timeout=0.25)
    built = build_understander(settings, knowledge)
    assert isinstance(built, RasaUnderstander)
    assert (built.client.url, built.client.timeout) == ("http://127.0.0.1:5999", 0.25)
