"""The Rasa project's data: the generated part is fresh, the hand-written parts are complete,
and the held-out test set really is held out. Also the evaluation's own arithmetic."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from bot.knowledge.base import KnowledgeBase
from bot.knowledge.loader import load_knowledge
from bot.normalize import normalize
from bot.understanding.evaluation import (
    Example,
    ExamplesFileError,
    load_examples,
    parse_annotated,
    score,
)
from bot.understanding.training_data import NLU_DIR, export, render
from bot.understanding.types import INTENTS, Understanding

REPO = Path(__file__).resolve().parents[1]
TRAINING = NLU_DIR / "data" / "nlu.yml"
HELD_OUT = NLU_DIR / "tests" / "test_nlu.yml"


def test_the_committed_lookup_tables_and_synonyms_match_a_fresh_export(
    knowledge: KnowledgeBase,
) -> None:
    generated = export(knowledge, NLU_DIR / "data")
    assert generated.is_current(), (
        f"{generated.path} is stale: run `.venv/bin/lotse nlu export` and commit the result"
    )


def test_lotse_nlu_export_check_exits_1_when_knowledge_has_a_new_alias(tmp_path: Path) -> None:
    knowledge_dir = tmp_path / "knowledge"
    subprocess.run(["cp", "-r", str(REPO / "knowledge"), str(knowledge_dir)], check=True)
    thunderbird = knowledge_dir / "thunderbird.yaml"
    text = thunderbird.read_text(encoding="utf-8")
    thunderbird.write_text(text.replace("'TB']", "'TB', 'Donnervogel']"), encoding="utf-8")
    assert "Donnervogel" in render(load_knowledge(knowledge_dir))
    check = subprocess.run(
        [sys.executable, "-m", "bot.cli", "nlu", "export", "--check"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"LOTSE_KNOWLEDGE_DIR": str(knowledge_dir), "PATH": "/usr/bin:/bin"},
    )
    assert check.returncode == 1, check.stderr
    assert "stale" in check.stderr


def test_the_export_maps_aliases_to_program_ids_and_version_names_to_numbers(
    knowledge: KnowledgeBase,
) -> None:
    document = yaml.safe_load(render(knowledge))
    synonyms = {
        str(block["synonym"]): block["examples"] for block in document["nlu"] if "synonym" in block
    }
    assert "- Samsung Galaxy" in synonyms["android"]
    assert "- El Capitan" in synonyms["10.11"]
    lookups = {block["lookup"] for block in document["nlu"] if "lookup" in block}
    assert lookups == {"client", "version", "port", "protocol", "security", "device", "error"}
    assert "- Outlook für Mac" in synonyms["outlook-mac"]
    assert "- iPhone 15 Pro Max" in synonyms["ios"]
    errors = next(block["examples"] for block in document["nlu"] if block.get("lookup") == "error")
    assert "- Zertifikat ungültig" in errors


def test_every_intent_has_at_least_25_training_examples(knowledge: KnowledgeBase) -> None:
    counts = Counter(example.intent for example in load_examples(TRAINING, knowledge))
    assert {intent: counts[intent] for intent in INTENTS if counts[intent] < 25} == {}


def test_the_held_out_set_has_150_examples_across_all_intents_none_from_training(
    knowledge: KnowledgeBase,
) -> None:
    held_out = load_examples(HELD_OUT, knowledge)
    assert len(held_out) >= 150
    assert {example.intent for example in held_out} == set(INTENTS)
    trained = {normalize(example.text) for example in load_examples(TRAINING, knowledge)}
    copied = [example.text for example in held_out if normalize(example.text) in trained]
    assert copied == []


def test_annotations_become_plain_text_and_the_bots_entity_values(
    knowledge: KnowledgeBase,
) -> None:
    text, entities = parse_annotated(
        '[outlok]{"entity": "client", "value": "outlook"} [2013](version) über [IMAP](protocol)'
        " und [Mac](client) mit [High Sierra](version)",
        knowledge,
    )
    assert text == "outlok 2013 über IMAP und Mac mit High Sierra"
    assert entities == {"client": "outlook", "version": "2013", "protocol": "imap"}


def test_an_annotation_naming_an_unknown_program_is_an_error(knowledge: KnowledgeBase) -> None:
    with pytest.raises(ExamplesFileError, match="names nothing in the knowledge base"):
        parse_annotated("ich nutze [Lotus Notes](client)", knowledge, "test")


def test_the_scores_count_intents_entities_and_guides() -> None:
    examples = [
        Example("outlook 2013", "inform", {"client": "outlook"}, "outlook-2010-2016"),
        Example("weiter", "next_step"),
        Example("hallo", "greet"),
        Example("nein", "deny"),
    ]
    results = [
        Understanding("outlook 2013", "inform", 0.9, {"client": "outlook"}, "outlook-2010-2016"),
        Understanding("weiter", "next_step", 0.9),
        Understanding("hallo", "deny", 0.9, {"port": "25"}, "thunderbird"),
        Understanding("nein", "deny", 0.9),
    ]
    report = score("test", examples, results)
    assert report.intent_accuracy == 0.75
    assert report.per_intent_f1["deny"] == pytest.approx(2 / 3)
    assert report.per_intent_f1["greet"] == 0.0
    assert report.macro_f1 == pytest.approx((1 + 1 + 0 + 2 / 3) / 4)
    assert (report.entity_precision, report.entity_recall) == (0.5, 1.0)
    assert (report.guide_accuracy, report.guide_cases) == (0.5, 2)
    assert [miss.example.text for miss in report.intent_misses] == ["hallo"]
    assert "hallo" in report.format()


def test_english_examples_get_their_own_intent_accuracy(knowledge: KnowledgeBase) -> None:
    held_out = load_examples(HELD_OUT, knowledge)
    english = [example for example in held_out if example.language == "en"]
    assert len(english) >= 50
    assert {example.intent for example in english} == set(INTENTS)
    examples = [Example("weiter", "next_step"), Example("next", "next_step", language="en")]
    results = [Understanding("weiter", "next_step", 0.9), Understanding("next", "greet", 0.9)]
    report = score("test", examples, results)
    assert report.per_language == {"de": (1.0, 1), "en": (0.0, 1)}
    assert "intent accuracy (en): 0.000 (1 examples)" in report.format()
    assert report.summary()["intent_accuracy_en"] == 0.0
