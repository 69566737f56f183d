"""The Rasa back end: a Rasa 3.6 server decides the intent, the lexicon resolves the rest.

`RasaUnderstander` posts each message to `POST /model/parse` with a short deadline. Rasa's intent
wins when it is confident; program, version and guide always come from the lexicon, which knows
the knowledge base exactly (Rasa's entities only fill gaps). When Rasa is below the threshold, says
`nlu_fallback`, is slow or down, the lexicon answers alone, so the user never notices an outage.
After repeated failures a circuit breaker stops calling Rasa and tries again now and then.

When Rasa's two best intents are close and the lexicon backs neither, the understanding carries
the second one as `alternative` and the engine asks "Meinten Sie …?".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import httpx

from bot.knowledge.base import KnowledgeBase
from bot.knowledge.models import VERSION_PATTERN
from bot.knowledge.versions import guide_for_version
from bot.normalize import normalize
from bot.numbers import ascii_number
from bot.understanding.lexicon import LexiconUnderstander
from bot.understanding.patterns import match_intent
from bot.understanding.training_data import PROTOCOL_SYNONYMS, SECURITY_SYNONYMS
from bot.understanding.types import ENTITY_NAMES, INTENTS, Intent, Understanding

__all__ = [
    "DEFAULT_AMBIGUITY_MARGIN",
    "DEFAULT_THRESHOLD",
    "FALLBACK_INTENT",
    "CircuitBreaker",
    "RasaClient",
    "RasaEntity",
    "RasaParse",
    "RasaUnavailable",
    "RasaUnderstander",
    "normalize_entity_value",
]

log = logging.getLogger(__name__)

FALLBACK_INTENT = "nlu_fallback"
# Below this the lexicon decides; DIET is rarely unsure, so this catches the truly lost cases.
DEFAULT_THRESHOLD = 0.5
# Top two intents closer than this count as a tie ("Meinten Sie …?").
DEFAULT_AMBIGUITY_MARGIN = 0.15
# Intents that do not stop a named program from being an answer to "Which program?".
_YIELDS_TO_PROGRAM = ("greet", "affirm", "deny", "out_of_scope")
# Intents with a cost when wrong (a ticket, a restart, the end of the conversation), and the
# lexicon's readings that win ("mir wurscht" is no goodbye, "what's my username?" no ticket).
_COSTLY = ("request_human", "restart", "goodbye")
_SAYS_OTHERWISE = ("step_problem", "inform", "greet", "ask_explanation")


class RasaUnavailable(Exception):
    """Rasa did not answer usefully (down, slow, HTTP error, unexpected body)."""


@dataclass(frozen=True)
class RasaEntity:
    entity: str
    value: str


@dataclass(frozen=True)
class RasaParse:
    """The parts of Rasa's `/model/parse` answer the bot uses."""

    intent: str
    confidence: float
    ranking: tuple[tuple[str, float], ...]
    entities: tuple[RasaEntity, ...]

    @classmethod
    def from_json(cls, body: object) -> RasaParse:
        if not isinstance(body, Mapping):
            raise RasaUnavailable(f"unexpected answer from Rasa: {body!r:.200}")
        data = cast(Mapping[str, Any], body)
        try:
            intent = data.get("intent") or {}
            ranking = tuple(
                (str(item["name"]), float(item["confidence"]))
                for item in data.get("intent_ranking") or []
            )
            entities = tuple(
                RasaEntity(str(item["entity"]), str(item["value"]))
                for item in data.get("entities") or []
            )
            name = str(intent.get("name") or "")
            confidence = float(intent.get("confidence") or 0.0)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise RasaUnavailable(f"unexpected answer from Rasa: {error}") from error
        if not ranking and name:
            ranking = ((name, confidence),)
        return cls(name, confidence, ranking, entities)

    def real_ranking(self) -> list[tuple[Intent, float]]:
        """Rasa's ranking of our intents, without `nlu_fallback` and unknown names."""
        return [(cast(Intent, name), conf) for name, conf in self.ranking if name in INTENTS]


class CircuitBreaker:
    """Closed: calls go through. After `threshold` failures in a row it opens: calls are refused
    for `retry_after` seconds, then one trial call is let through (half-open); its success closes
    the breaker, its failure opens it again."""

    def __init__(
        self,
        threshold: int = 3,
        retry_after: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.retry_after = retry_after
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False

    @property
    def is_open(self) -> bool:
        return self._opened_at is not None

    def allow(self) -> bool:
        if self._opened_at is None:
            return True
        if self._trial_running or self._clock() - self._opened_at < self.retry_after:
            return False
        self._trial_running = True
        return True

    def record_success(self) -> None:
        if self._opened_at is not None:
            log.warning("Rasa answers again; using it for understanding")
        self._failures = 0
        self._opened_at = None
        self._trial_running = False

    def record_failure(self) -> None:
        self._failures += 1
        was_open = self._opened_at is not None
        if was_open or self._failures >= self.threshold:
            self._opened_at = self._clock()
            if not was_open:
                log.warning(
                    "Rasa failed %d times; using the lexicon, retrying every %.0f s",
                    self._failures,
                    self.retry_after,
                )
        self._trial_running = False


class RasaClient:
    """`POST /model/parse` with a total deadline. One httpx client per event loop."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _http(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            # A client is bound to the loop it first ran on (tests and CLI may use several).
            self._client = httpx.AsyncClient(base_url=self.url, timeout=self.timeout)
            self._loop = loop
        return self._client

    async def parse(self, text: str) -> RasaParse:
        try:
            async with asyncio.timeout(self.timeout):
                response = await self._http().post("/model/parse", json={"text": text})
                response.raise_for_status()
                body = response.json()
        except (httpx.HTTPError, TimeoutError, ValueError) as error:
            raise RasaUnavailable(f"{type(error).__name__}: {error}") from error
        return RasaParse.from_json(body)

    async def version(self) -> str:
        """Rasa's version, from `GET /version`; raises `RasaUnavailable`."""
        try:
            response = await self._http().get("/version", timeout=max(self.timeout, 5.0))
            response.raise_for_status()
            return str(response.json().get("version", "?"))
        except (httpx.HTTPError, ValueError, AttributeError) as error:
            raise RasaUnavailable(f"no Rasa server at {self.url}: {error}") from error

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            with contextlib.suppress(RuntimeError):  # its event loop is already closed
                await client.aclose()


class RasaUnderstander:
    """The `Understander` for `LOTSE_NLU=rasa`."""

    def __init__(
        self,
        knowledge: KnowledgeBase,
        url: str,
        timeout: float = 0.5,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        ambiguity_margin: float = DEFAULT_AMBIGUITY_MARGIN,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.knowledge = knowledge
        self.lexicon = LexiconUnderstander(knowledge)
        self.client = RasaClient(url, timeout)
        self.threshold = threshold
        self.ambiguity_margin = ambiguity_margin
        self.breaker = breaker or CircuitBreaker()

    async def understand(self, text: str) -> Understanding:
        parse = await self._parse_guarded(text)
        return self.combine(text, parse)

    def use_knowledge(self, knowledge: KnowledgeBase) -> None:
        """After a reload: the lexicon side sees new aliases at once (Rasa at its next training)."""
        self.knowledge = knowledge
        self.lexicon.use_knowledge(knowledge)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def _parse_guarded(self, text: str) -> RasaParse | None:
        if not text.strip() or not self.breaker.allow():
            return None
        try:
            parse = await self.client.parse(text)
        except RasaUnavailable as error:
            log.info("Rasa unavailable, the lexicon answers: %s", error)
            self.breaker.record_failure()
            return None
        self.breaker.record_success()
        return parse

    # --- pure parts, also used by the evaluation --------------------------------------

    def combine(self, text: str, parse: RasaParse | None) -> Understanding:
        """Rasa's intent with the lexicon's program/version/guide; the lexicon alone when Rasa
        has nothing useful to say."""
        lexical = self.lexicon.understand_now(text)
        if parse is None:
            return lexical
        ranking = parse.real_ranking()
        if not ranking or ranking[0][1] < self.threshold:
            return lexical
        intent, confidence = ranking[0]
        alternative: Intent | None = None
        if len(ranking) > 1 and confidence - ranking[1][1] < self.ambiguity_margin:
            second = ranking[1][0]
            backed = match_intent(normalize(text))
            if backed in (intent, second):
                intent = backed
            else:
                alternative = second
        if intent in _COSTLY and lexical.intent in _SAYS_OTHERWISE:
            # A ticket, a lost guide or a goodbye on Rasa's word alone, while the lexicon reads
            # a complaint, a question, an answer, a program or who the user is ("Bearbeiten ist
            # bei mir grau", "mir wurscht", "Ich bin Mitarbeiterin am Institut"): the lexicon's
            # reading is the safer one.
            intent, alternative = lexical.intent, None
        entities = dict(lexical.entities)
        guide = lexical.guide
        for name, value in self._entities(parse).items():
            entities.setdefault(name, value)
        if guide is None and "client" in entities:
            guide = self.guide_for(entities["client"], entities.get("version"))
        if "client" in entities and intent in _YIELDS_TO_PROGRAM:
            intent, alternative = "inform", None
        return Understanding(text, intent, confidence, entities, guide, alternative, source="rasa")

    def from_rasa_only(self, text: str, parse: RasaParse) -> Understanding:
        """What Rasa alone understood (the `rasa` column of the evaluation)."""
        intent: Intent = "out_of_scope"
        if parse.intent in INTENTS:
            intent = cast(Intent, parse.intent)
        entities = self._entities(parse)
        guide = None
        if "client" in entities:
            guide = self.guide_for(entities["client"], entities.get("version"))
        return Understanding(text, intent, parse.confidence, entities, guide, source="rasa")

    def guide_for(self, program: str, version: str | None) -> str | None:
        guides = self.knowledge.guides_of_program.get(program, [])
        if len(guides) == 1:
            return guides[0].id
        if version is None:
            return None
        choice = guide_for_version(guides, version)
        return choice.guide.id if choice else None

    def _entities(self, parse: RasaParse) -> dict[str, str]:
        """Rasa's entities as the bot's values; values it cannot place are dropped."""
        entities: dict[str, str] = {}
        for item in parse.entities:
            if item.entity in ENTITY_NAMES and item.entity not in entities:
                value = normalize_entity_value(self.knowledge, item.entity, item.value)
                if value is not None:
                    entities[item.entity] = value
        return entities


def _synonym_table(table: Mapping[str, Sequence[str]]) -> dict[str, str]:
    result = {normalize(value): value for value in table}
    for value, names in table.items():
        for name in names:
            result[normalize(name)] = value
    return result


_PROTOCOLS = _synonym_table(PROTOCOL_SYNONYMS)
_SECURITIES = _synonym_table(SECURITY_SYNONYMS)


def normalize_entity_value(knowledge: KnowledgeBase, entity: str, value: str) -> str | None:
    """An entity value as the bot uses it, or None when it names nothing the bot knows:
    client -> program id, version -> number ("El Capitan" -> "10.11"), protocol -> imap|pop3|
    smtp|eas, security -> tls|starttls, port -> digits."""
    said = normalize(value)
    if entity == "client":
        if value in knowledge.programs:
            return value
        for program in knowledge.programs.values():
            names = (program.id, program.name, *program.aliases)
            if said in {normalize(name) for name in names}:
                return program.id
        return None
    if entity == "version":
        for program in knowledge.programs.values():
            for name, number in program.version_names.items():
                if said == normalize(name):
                    return number
        return said if VERSION_PATTERN.match(said) else None
    if entity == "protocol":
        return _PROTOCOLS.get(said)
    if entity == "security":
        return _SECURITIES.get(said)
    if entity == "port":
        return said if ascii_number(said, 5) is not None else None
    return None
