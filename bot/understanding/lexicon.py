"""The lexicon back end: intents from phrase patterns, programs and versions from the knowledge.

It needs nothing running. Program names and aliases are matched exactly first and then fuzzily
(typos such as "outlok" or "thunderbrid"); versions are normalised to guides through
`bot.knowledge.versions` (`bot.knowledge.lexicon.ProgramLexicon`, which the Rasa back end uses
for program and version too).
"""

from __future__ import annotations

import re

from rapidfuzz import fuzz, process

from bot.knowledge.base import KnowledgeBase
from bot.knowledge.lexicon import ProgramLexicon
from bot.normalize import normalize
from bot.understanding.acts import (
    ERROR_CODE,
    NEGATION,
    answer_kind,
    error_in,
    profile_asked,
    step_asked,
    thanked,
    topic,
    without_identity,
    without_replaced,
)
from bot.understanding.patterns import GREETING, KEYWORDS, match_intent
from bot.understanding.types import Intent, Understanding

__all__ = ["LexiconUnderstander"]

_FUZZY_KEYWORD_SCORE = 80.0
_PROTOCOLS = [
    ("imap", re.compile(r"\bimaps?\b")),
    ("pop3", re.compile(r"\bpop ?3?s?\b")),
    ("smtp", re.compile(r"\bsmtps?\b")),
    ("eas", re.compile(r"\b(activesync|eas|exchange)\b")),
]
_SECURITY = [
    ("starttls", re.compile(r"\b(starttls|stls|start-tls)\b")),
    ("tls", re.compile(r"\b(ssl|tls|ssl/tls)\b")),
]


class LexiconUnderstander:
    """The `Understander` that needs no server: patterns plus `ProgramLexicon`."""

    def __init__(self, knowledge: KnowledgeBase) -> None:
        self.lexicon = ProgramLexicon(knowledge)

    def use_knowledge(self, knowledge: KnowledgeBase) -> None:
        """After a reload: new aliases and versions take effect at once."""
        self.lexicon = ProgramLexicon(knowledge)

    async def understand(self, text: str) -> Understanding:
        return self.understand_now(text)

    def understand_now(self, text: str) -> Understanding:
        # "Ich bin Mitarbeiterin": who the user is, not a request for a person.
        normalized = without_identity(normalize(text))
        step, rest = step_asked(normalized)
        rest = ERROR_CODE.sub(" ", rest)  # "0x800CCC0E" holds no version
        # "nicht 2013, sondern 2016": the replaced value is neither a slot nor a complaint.
        rest = without_replaced(rest)
        intent, confidence = self._intent(normalized)
        entities = self.entities(rest)
        match = self.lexicon.find(rest)  # "Schritt 1" is no version 1
        if match.program:
            entities["client"] = match.program
        if match.version:
            entities["version"] = match.version
        if match.generic_device:
            entities["device"] = "generic"  # "Handy": iPhone/iPad or Android?
        elif match.computer:
            entities["device"] = match.computer  # "Windows-Laptop": which program there?
        trouble = self.lexicon.knowledge.troubleshooting.match(text, match.program)
        if trouble:
            entities["trouble"] = trouble[0].id  # a pasted error message the knowledge knows
        informative = match.program or (match.version and intent is None) or entities
        acts = self.acts(normalized, step)
        if acts.get("topic") == "encryption" and (informative or len(acts) > 1):
            del acts["topic"]  # it only marks a message on Lotse's subject that says nothing else
        if intent is None and acts.get("answer") == "unknown":
            intent, confidence = "step_problem", 0.7  # "keine Ahnung": cannot go on alone
        if intent is None and not acts and NEGATION.search(without_replaced(normalized)):
            # "das Häkchen gibts bei mir nicht": a negative statement is a complaint.
            intent, confidence = "step_problem", 0.6
        if (informative or acts) and intent in (None, "greet", "affirm", "deny", "out_of_scope"):
            # "Hallo, ich habe Outlook 2013" and "nein, Thunderbird" both tell us something.
            intent = "inform"
            confidence = max(confidence, match.score / 100 if match.program else 0.8)
        entities.update(acts)
        if thanked(normalized):
            # "super, hat geklappt, danke!": thanks beside what the message does (Rasa may
            # read it as next_step).
            entities["thanks"] = "1"
        if intent is None:
            intent, confidence = "out_of_scope", 0.3
        return Understanding(text, intent, confidence, entities, match.guide)

    @staticmethod
    def acts(normalized: str, step: str | None) -> dict[str, str]:
        """Step asked for, "don't know"/"any", a topic besides the guide, an error: the slots
        that tell the engine what the user does at the open question."""
        values = {
            "step": step,
            "answer": answer_kind(normalized),
            "topic": topic(normalized),
            "error": error_in(normalized),
        }
        if profile_asked(normalized):
            values["profile"] = "ask"
        return {name: value for name, value in values.items() if value is not None}

    def entities(self, normalized: str) -> dict[str, str]:
        entities: dict[str, str] = {}
        for name, pattern in _PROTOCOLS:
            if pattern.search(normalized):
                entities["protocol"] = name
                break
        for name, pattern in _SECURITY:
            if pattern.search(normalized):
                entities["security"] = name
                break
        ports = self.lexicon.ports(normalized)
        if ports:
            entities["port"] = ports[0]
        return entities

    @staticmethod
    def _intent(normalized: str) -> tuple[Intent | None, float]:
        intent = match_intent(normalized)
        greeting = GREETING.match(normalized)
        if intent == "greet" and greeting and len(normalized[greeting.end() :].split()) >= 3:
            # "Guten Tag, wie bekomme ich mehr Speicher?": the greeting is not the message.
            rest = match_intent(normalized[greeting.end() :])
            return rest, 0.9 if rest else 0.0
        if intent is not None:
            return intent, 0.9
        tokens = normalized.split()
        if 0 < len(tokens) <= 2:
            for token in tokens:
                hit = process.extractOne(
                    token, list(KEYWORDS), scorer=fuzz.ratio, score_cutoff=_FUZZY_KEYWORD_SCORE
                )
                if hit:
                    return KEYWORDS[hit[0]], round(float(hit[1]) / 100 * 0.8, 3)
        return None, 0.0
