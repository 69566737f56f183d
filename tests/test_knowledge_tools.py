"""Editor support and previews for admins: schema, yamllint, `lotse kb diff`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from bot.knowledge.diff import describe_changes
from bot.knowledge.loader import load_knowledge
from bot.knowledge.schema import EDITOR_COMMENT, SCHEMA_FILE, schema_text
from tests.support import KNOWLEDGE_DIR, REPO

YAML_FILES = sorted(KNOWLEDGE_DIR.glob("*.yaml"))


def test_the_committed_schema_is_generated_from_the_models() -> None:
    committed = (KNOWLEDGE_DIR / SCHEMA_FILE).read_text(encoding="utf-8")
    assert committed == schema_text(), "knowledge/schema.json is stale: run `lotse kb schema`"


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: p.name)
def test_every_knowledge_file_points_editors_at_the_schema_and_satisfies_it(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.splitlines()[0] == EDITOR_COMMENT
    schema = json.loads((KNOWLEDGE_DIR / SCHEMA_FILE).read_text(encoding="utf-8"))
    # As an editor sees the file: plain YAML types.
    jsonschema.validate(yaml.safe_load(text), schema)


def test_the_schema_flags_what_an_editor_should_underline() -> None:
    schema = json.loads((KNOWLEDGE_DIR / SCHEMA_FILE).read_text(encoding="utf-8"))
    wrong = {"server": {"name": "x", "host": "x", "endpoints": [{"protocol": "ftp"}]}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(wrong, schema)


def test_yamllint_finds_nothing_in_the_knowledge_base() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "yamllint", "-s", "knowledge"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_kb_diff_lists_per_guide_what_a_user_would_see_differently(tmp_path: Path) -> None:
    new = tmp_path / "knowledge"
    shutil.copytree(KNOWLEDGE_DIR, new)
    ios = new / "ios.yaml"
    ios.write_text(
        ios.read_text(encoding="utf-8")
        .replace('"Passwörter & Accounts"', '"Mail – Accounts"')
        .replace("'iPad'", "'iPad', 'iPod touch'"),
        encoding="utf-8",
    )
    changes = list(describe_changes(load_knowledge(KNOWLEDGE_DIR), load_knowledge(new)))
    assert changes[:2] == ["== program ios", "aliases: +iPod touch"]
    assert "== ios" in changes
    assert any(line.startswith("-") and "Passwörter & Accounts" in line for line in changes)
    assert any(line.startswith("+") and "Mail – Accounts" in line for line in changes)
    assert not any(line.startswith("== android") for line in changes)


def test_kb_diff_compares_git_revisions_and_says_when_nothing_changed() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "kb", "diff", "HEAD", "HEAD"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "No differences a user would see." in result.stdout
