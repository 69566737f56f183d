"""How well a back end understands a labelled test file (Rasa's `nlu.yml` format).

Examples are read from `- intent: NAME` blocks; entities are annotated as `[text](entity)` or
`[text]{"entity": "...", "value": "..."}`. A block's `metadata: {guide: ID}` names the guide its
examples should lead to; `metadata: {language: en}` marks English examples (German otherwise).
Gold entity values are normalised as the bot normalises its own (client -> program id, version
name -> number), so an annotation that names nothing the knowledge base knows is an error in the
file, not a silent miss.

Measures:
- intent accuracy, and macro F1 over the intents in the file; intent accuracy per language too,
  so that English understanding has its own figure beside the German majority;
- entity precision/recall/F1 over (entity, value) pairs;
- guide accuracy: over the examples where the gold or the predicted guide is set, the share
  where both are the same (a missed guide and a guide nobody asked for both count as errors).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import yaml

from bot.knowledge.base import KnowledgeBase
from bot.understanding.lexicon import LexiconUnderstander
from bot.understanding.rasa import RasaUnderstander, normalize_entity_value
from bot.understanding.types import ENTITY_NAMES, INTENTS, Understanding

__all__ = [
    "BACKENDS",
    "Example",
    "ExamplesFileError",
    "Miss",
    "Report",
    "evaluate",
    "evaluate_backend",
    "load_examples",
    "parse_annotated",
    "score",
]

_ANNOTATION = re.compile(r"\[(?P<text>[^\]]+)\](?:\((?P<entity>[^)]+)\)|(?P<json>\{[^}]*\}))")


class ExamplesFileError(Exception):
    """The test file is malformed; the message names the example."""


@dataclass(frozen=True)
class Example:
    text: str
    intent: str
    entities: dict[str, str] = field(default_factory=dict)
    guide: str | None = None
    language: str = "de"


@dataclass(frozen=True)
class Miss:
    example: Example
    got: Understanding


@dataclass
class Report:
    backend: str
    total: int
    intent_accuracy: float
    macro_f1: float
    entity_precision: float
    entity_recall: float
    entity_f1: float
    guide_accuracy: float
    guide_cases: int
    per_intent_f1: dict[str, float]
    # language -> (intent accuracy, examples)
    per_language: dict[str, tuple[float, int]]
    intent_misses: list[Miss]
    guide_misses: list[Miss]
    entity_misses: list[Miss]

    def format(self) -> str:
        lines = [
            f"backend: {self.backend}  examples: {self.total}",
            f"intent accuracy: {self.intent_accuracy:.3f}",
            f"intent macro F1: {self.macro_f1:.3f}",
            f"entity F1:       {self.entity_f1:.3f} "
            f"(precision {self.entity_precision:.3f}, recall {self.entity_recall:.3f})",
            f"guide accuracy:  {self.guide_accuracy:.3f} ({self.guide_cases} examples)",
            *(
                f"intent accuracy ({language}): {accuracy:.3f} ({count} examples)"
                for language, (accuracy, count) in sorted(self.per_language.items())
            ),
            "",
            "F1 per intent:",
        ]
        lines += [f"  {name:16} {score:.3f}" for name, score in sorted(self.per_intent_f1.items())]
        lines.append(f"\nmisclassified intents ({len(self.intent_misses)}):")
        lines += [
            f"  {m.example.intent:16} -> {m.got.intent:16} {m.got.confidence:.2f}  "
            f"{m.example.text!r}" + (f" (or {m.got.alternative}?)" if m.got.alternative else "")
            for m in self.intent_misses
        ]
        lines.append(f"\nwrong guides ({len(self.guide_misses)}):")
        lines += [
            f"  {m.example.guide or '-':24} -> {m.got.guide or '-':24} {m.example.text!r}"
            for m in self.guide_misses
        ]
        lines.append(f"\nwrong entities ({len(self.entity_misses)}):")
        lines += [
            f"  {_pairs(m.example.entities)} -> {_pairs(m.got.entities)}  {m.example.text!r}"
            for m in self.entity_misses
        ]
        return "\n".join(lines)

    def summary(self) -> dict[str, float]:
        return {
            "intent_accuracy": round(self.intent_accuracy, 3),
            "macro_f1": round(self.macro_f1, 3),
            "entity_f1": round(self.entity_f1, 3),
            "guide_accuracy": round(self.guide_accuracy, 3),
            **{
                f"intent_accuracy_{language}": round(accuracy, 3)
                for language, (accuracy, _count) in self.per_language.items()
            },
        }


def _pairs(entities: dict[str, str]) -> str:
    return "{" + ", ".join(f"{k}={v}" for k, v in sorted(entities.items())) + "}"


# --- reading the file --------------------------------------------------------------------


def parse_annotated(
    text: str, knowledge: KnowledgeBase, where: str = ""
) -> tuple[str, dict[str, str]]:
    """Plain text and normalised entities of one annotated example."""
    entities: dict[str, str] = {}
    plain: list[str] = []
    position = 0
    for match in _ANNOTATION.finditer(text):
        plain.append(text[position : match.start()])
        surface = match.group("text")
        plain.append(surface)
        position = match.end()
        if match.group("json"):
            try:
                spec = json.loads(match.group("json"))
            except json.JSONDecodeError as error:
                raise ExamplesFileError(f"{where}: bad annotation {match.group(0)!r}") from error
            name, value = str(spec.get("entity", "")), str(spec.get("value", surface))
        else:
            name, value = match.group("entity"), surface
        if name not in ENTITY_NAMES:
            raise ExamplesFileError(f"{where}: unknown entity {name!r} in {text!r}")
        normalised = normalize_entity_value(knowledge, name, value)
        if normalised is None:
            raise ExamplesFileError(
                f"{where}: {name} {value!r} names nothing in the knowledge base; "
                f'annotate its value: [{surface}]{{"entity": "{name}", "value": "..."}}'
            )
        entities.setdefault(name, normalised)
    plain.append(text[position:])
    return "".join(plain), entities


def _block_examples(raw: object, where: str) -> list[str]:
    if isinstance(raw, str):
        lines = [line.strip() for line in raw.splitlines() if line.strip()]
        bad = [line for line in lines if not line.startswith("- ")]
        if bad:
            raise ExamplesFileError(f"{where}: example lines must start with '- ': {bad[0]!r}")
        return [line[2:].strip() for line in lines]
    if isinstance(raw, list):
        return [str(item["text"]).strip() if isinstance(item, dict) else str(item) for item in raw]
    raise ExamplesFileError(f"{where}: examples must be a block of '- ' lines")


def load_examples(path: Path, knowledge: KnowledgeBase) -> list[Example]:
    document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    blocks = cast(list[dict[str, Any]], document.get("nlu") or [])
    examples: list[Example] = []
    for number, block in enumerate(blocks, 1):
        if "intent" not in block:
            continue  # lookup tables, synonyms, regexes
        intent = str(block["intent"])
        where = f"{path}: block {number} ({intent})"
        if intent not in INTENTS:
            raise ExamplesFileError(f"{where}: unknown intent")
        metadata = block.get("metadata") or {}
        guide = metadata.get("guide") if isinstance(metadata, dict) else None
        language = str(metadata.get("language", "de")) if isinstance(metadata, dict) else "de"
        if guide is not None and guide not in knowledge.guides:
            raise ExamplesFileError(f"{where}: unknown guide {guide!r}")
        for raw in _block_examples(block.get("examples"), where):
            text, entities = parse_annotated(raw, knowledge, where)
            examples.append(Example(text, intent, entities, guide, language))
    return examples


# --- scoring -----------------------------------------------------------------------------


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def score(backend: str, examples: Sequence[Example], results: Sequence[Understanding]) -> Report:
    total = len(examples)
    intent_misses: list[Miss] = []
    guide_misses: list[Miss] = []
    entity_misses: list[Miss] = []
    true_positive: Counter[str] = Counter()
    predicted: Counter[str] = Counter()
    gold: Counter[str] = Counter()
    by_language: Counter[str] = Counter()
    right_by_language: Counter[str] = Counter()
    entity_hits = entity_predicted = entity_gold = 0
    guide_cases = guide_hits = 0
    for example, got in zip(examples, results, strict=True):
        gold[example.intent] += 1
        predicted[got.intent] += 1
        by_language[example.language] += 1
        if got.intent == example.intent:
            true_positive[example.intent] += 1
            right_by_language[example.language] += 1
        else:
            intent_misses.append(Miss(example, got))
        expected_pairs = set(example.entities.items())
        got_pairs = {(k, v) for k, v in got.entities.items() if k in ENTITY_NAMES}
        entity_hits += len(expected_pairs & got_pairs)
        entity_predicted += len(got_pairs)
        entity_gold += len(expected_pairs)
        if expected_pairs != got_pairs:
            entity_misses.append(Miss(example, got))
        if example.guide or got.guide:
            guide_cases += 1
            if example.guide == got.guide:
                guide_hits += 1
            else:
                guide_misses.append(Miss(example, got))
    per_intent: dict[str, float] = {}
    for intent in gold:
        precision = true_positive[intent] / predicted[intent] if predicted[intent] else 0.0
        recall = true_positive[intent] / gold[intent]
        per_intent[intent] = _f1(precision, recall)
    entity_precision = entity_hits / entity_predicted if entity_predicted else 1.0
    entity_recall = entity_hits / entity_gold if entity_gold else 1.0
    return Report(
        backend=backend,
        total=total,
        intent_accuracy=sum(true_positive.values()) / total if total else 0.0,
        macro_f1=sum(per_intent.values()) / len(per_intent) if per_intent else 0.0,
        entity_precision=entity_precision,
        entity_recall=entity_recall,
        entity_f1=_f1(entity_precision, entity_recall),
        guide_accuracy=guide_hits / guide_cases if guide_cases else 1.0,
        guide_cases=guide_cases,
        per_intent_f1=per_intent,
        per_language={
            language: (right_by_language[language] / count, count)
            for language, count in by_language.items()
        },
        intent_misses=intent_misses,
        guide_misses=guide_misses,
        entity_misses=entity_misses,
    )


async def evaluate(
    backend: str,
    examples: Sequence[Example],
    understand: Callable[[str], Awaitable[Understanding]],
) -> Report:
    results = [await understand(example.text) for example in examples]
    return score(backend, examples, results)


BACKENDS = ("lexicon", "rasa", "combined")


async def evaluate_backend(
    backend: str,
    examples: Sequence[Example],
    knowledge: KnowledgeBase,
    rasa_url: str = "http://127.0.0.1:5005",
    rasa_timeout: float = 10.0,
) -> Report:
    """Score one back end. `rasa` and `combined` need the server: unlike the bot, the evaluation
    raises `RasaUnavailable` instead of quietly measuring the lexicon."""
    if backend == "lexicon":
        lexicon = LexiconUnderstander(knowledge)
        return await evaluate(backend, examples, lexicon.understand)
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}")
    rasa = RasaUnderstander(knowledge, rasa_url, rasa_timeout)
    try:
        await rasa.client.version()

        async def understand(text: str) -> Understanding:
            parse = await rasa.client.parse(text)
            if backend == "rasa":
                return rasa.from_rasa_only(text, parse)
            return rasa.combine(text, parse)

        return await evaluate(backend, examples, understand)
    finally:
        await rasa.aclose()
