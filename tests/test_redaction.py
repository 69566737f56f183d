"""Password redaction measured on the labelled corpus in tests/data/redaction_corpus.yaml, and
the report `lotse eval redaction` prints from it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.evaluation.redaction import CORPUS, Labelled, evaluate, leaked_pieces, load_corpus
from bot.gate import clean
from bot.redaction import REDACTED
from tests.support import REPO

WITH_PASSWORD, ORDINARY = load_corpus()


def test_the_corpus_is_big_enough_to_mean_something() -> None:
    assert len(WITH_PASSWORD) >= 60
    assert len(ORDINARY) >= 200
    assert len({item.text for item in WITH_PASSWORD}) == len(WITH_PASSWORD)
    assert len(set(ORDINARY)) == len(ORDINARY)


@pytest.mark.parametrize("item", WITH_PASSWORD, ids=lambda item: item.text[:40])
def test_no_piece_of_a_password_is_kept_and_the_user_is_warned(item: Labelled) -> None:
    cleaned = clean(item.text)
    assert cleaned.had_secret
    assert REDACTED in cleaned.text
    for secret in item.secrets:
        assert leaked_pieces(secret, cleaned.text)[1] == [], cleaned.text


@pytest.mark.parametrize("text", ORDINARY, ids=lambda text: text[:40])
def test_an_ordinary_message_is_kept_as_written_without_a_warning(text: str) -> None:
    cleaned = clean(text)
    assert not cleaned.had_secret
    assert cleaned.text == text


def test_recall_and_precision_are_both_one_on_the_corpus() -> None:
    report = evaluate()
    assert (report.recall, report.precision) == (1.0, 1.0)
    assert report.leaks == [] and report.false_alarms == []
    assert report.secret_chars > 0 and report.flagged_with_password == len(WITH_PASSWORD)


def test_a_leak_counts_every_character_of_a_secret_still_there() -> None:
    survived, pieces = leaked_pieces("Sommer Zeit 2024", f"mein passwort: {REDACTED} Zeit 2024")
    assert pieces == [" Zei", "Zeit", "eit ", "it 2", "t 20", " 202", "2024"]
    assert len(survived) == len(" Zeit 2024")


def test_lotse_eval_redaction_prints_the_figures_and_exits_0_when_nothing_is_missed() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "eval", "redaction"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"messages with a password: {len(WITH_PASSWORD)}" in result.stdout
    assert f"ordinary messages: {len(ORDINARY)}" in result.stdout
    assert "recall (password characters removed): 1.000" in result.stdout
    assert "precision (flagged messages that carried a password): 1.000" in result.stdout
    assert f"false alarms: 0 of {len(ORDINARY)}" in result.stdout


def test_lotse_eval_redaction_lists_each_miss_and_exits_1(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.yaml"
    corpus.write_text(
        'passwords:\n  - "mein Lieblingswort ⟦sommer⟧"\n'
        'ordinary:\n  - "Passwort: Sommer2024"\n  - "Hallo"\n',
        encoding="utf-8",
    )
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "eval", "redaction", "--corpus", str(corpus)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "recall (password characters removed): 0.000 (0 of 6)" in result.stdout
    assert "false alarms: 1 of 2" in result.stdout
    assert "leaked somm, omme, mmer: 'mein Lieblingswort sommer'" in result.stdout
    assert "false alarm: 'Passwort: Sommer2024'" in result.stdout


def test_the_default_corpus_is_the_one_in_the_tests() -> None:
    assert CORPUS == REPO / "tests" / "data" / "redaction_corpus.yaml"
