"""Admins' mistakes in the knowledge base are reported with file, line and field."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.knowledge.loader import KnowledgeError, load_knowledge
from tests.support import KNOWLEDGE_DIR, REPO


@pytest.fixture
def kb_copy(tmp_path: Path) -> Path:
    target = tmp_path / "knowledge"
    shutil.copytree(KNOWLEDGE_DIR, target)
    return target


def _problems(directory: Path, *, translations: bool = False) -> list[str]:
    with pytest.raises(KnowledgeError) as caught:
        load_knowledge(directory, require_translations=translations)
    return [str(problem) for problem in caught.value.problems]


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _line_of(path: Path, needle: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(number for number, line in enumerate(lines, 1) if needle in line)


def test_the_shipped_knowledge_base_is_valid_with_every_translation_current() -> None:
    knowledge = load_knowledge(KNOWLEDGE_DIR, require_translations=True)
    assert len(knowledge.guides) >= 9
    assert knowledge.server.name == "mbox1.belwue.de"


def test_a_wrong_value_is_reported_with_file_line_and_field(kb_copy: Path) -> None:
    server = kb_copy / "server.yaml"
    _replace(server, "port: 995, security: tls", "port: 995, security: ssl")
    line = _line_of(server, "port: 995")
    assert _problems(kb_copy) == [
        f"{server}:{line}: server.endpoints.2.security: Input should be 'tls' or 'starttls'"
    ]


def test_a_misspelt_key_is_an_error_not_silently_ignored(kb_copy: Path) -> None:
    android = kb_copy / "android.yaml"
    _replace(android, "    steps:", "    stepps:")
    problems = _problems(kb_copy)
    assert any("guides.0.stepps: Extra inputs are not permitted" in p for p in problems)
    assert any("guides.0.steps: Field required" in p for p in problems)


def test_broken_yaml_syntax_is_reported_with_its_line(kb_copy: Path) -> None:
    faq = kb_copy / "faq.yaml"
    faq.write_text("faq:\n  - id: x\n    question: [unclosed\n", encoding="utf-8")
    (problem,) = _problems(kb_copy)
    assert problem.startswith(f"{faq}:4: YAML syntax error")


def test_versions_stay_text_so_1_10_is_not_read_as_the_float_1_1(kb_copy: Path) -> None:
    ios = kb_copy / "ios.yaml"
    _replace(ios, 'versions: ["12", "13"]', "versions: [12, 1.10]")
    assert load_knowledge(kb_copy).guides["ios"].versions == ["12", "1.10"]


def test_an_alias_claimed_by_two_programs_is_reported_in_both_files(kb_copy: Path) -> None:
    ios, android = kb_copy / "ios.yaml", kb_copy / "android.yaml"
    _replace(ios, "'iPad'", "'Galaxy'")
    at_ios = f"{ios}:{_line_of(ios, 'Galaxy')}:"
    at_android = f"{android}:{_line_of(android, 'Galaxy')}:"
    assert sorted(_problems(kb_copy)) == sorted(
        [
            f"{at_ios} program.aliases.1: alias 'Galaxy' is already used by program android "
            f"({at_android[:-1]})",
            f"{at_android} program.aliases.2: alias 'Galaxy' is already used by program ios "
            f"({at_ios[:-1]})",
        ]
    )


def test_an_alias_added_to_outlook_that_thunderbird_claims_is_reported_at_outlook_too(
    kb_copy: Path,
) -> None:
    outlook = kb_copy / "outlook.yaml"
    _replace(outlook, "'Office Outlook'", "'Office Outlook', 'TB'")
    problems = _problems(kb_copy)
    line = _line_of(outlook, "'Office Outlook', 'TB'")
    assert any(p.startswith(f"{outlook}:{line}:") and "program thunderbird" in p for p in problems)
    assert any("thunderbird.yaml" in p.split(":")[0] for p in problems)


def test_a_card_alias_that_a_guided_program_claims_is_reported_at_both(kb_copy: Path) -> None:
    cards = kb_copy / "cards.yaml"
    _replace(cards, "'Spark Mail'", "'Spark Mail', 'Mozilla Thunderbird'")
    problems = _problems(kb_copy)
    assert any(p.startswith(f"{cards}:") and "program thunderbird" in p for p in problems)
    assert any("thunderbird.yaml" in p.split(":")[0] and "card spark" in p for p in problems)


def test_a_missing_file_and_an_empty_step_are_both_reported(kb_copy: Path) -> None:
    (kb_copy / "faq.yaml").unlink()
    _replace(kb_copy / "thunderbird.yaml", "- text: 'Auf der linken", "- text: ''\n#'")
    problems = _problems(kb_copy)
    assert any(p.endswith("faq.yaml: file is missing") for p in problems)
    assert any(
        "guides.0.steps.1.text: String should have at least 1 character" in p for p in problems
    )


def _lotse(*args: str, knowledge: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if knowledge is not None:
        env["LOTSE_KNOWLEDGE_DIR"] = str(knowledge)
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        input="",
        check=False,
    )


def test_lotse_kb_validate_prints_every_problem_and_exits_1(kb_copy: Path) -> None:
    _replace(kb_copy / "server.yaml", "port: 993", "port: 99999")
    result = _lotse("kb", "validate", str(kb_copy))
    assert result.returncode == 1
    assert "server.endpoints.0.port: Input should be less than or equal to 65535" in result.stderr
    assert _lotse("kb", "validate").returncode == 0


def test_the_bot_refuses_to_start_on_an_invalid_knowledge_base(
    kb_copy: Path, tmp_path: Path
) -> None:
    _replace(kb_copy / "server.yaml", "port: 993", "port: 99999")
    result = _lotse("chat", knowledge=kb_copy)
    assert result.returncode == 1
    assert "server.yaml:" in result.stderr and "65535" in result.stderr


def test_lotse_kb_show_prints_a_guide_as_the_bot_shows_it() -> None:
    result = _lotse("kb", "show", "outlook-2019-365", "--protocol", "pop3")
    assert result.returncode == 0
    assert "Microsoft Outlook 2019/365 – Schritt 4 von 4" in result.stdout
    assert "    • Verschlüsselungsmethode: SSL/TLS" in result.stdout
    assert _lotse("kb", "show", "lotus-notes").returncode == 1


def test_aliases_that_differ_only_in_punctuation_count_as_the_same(kb_copy: Path) -> None:
    thunderbird = kb_copy / "thunderbird.yaml"
    _replace(thunderbird, "'TB'", "'TB', 'Apple Mail!'")
    problem = next(p for p in _problems(kb_copy) if p.startswith(str(thunderbird)))
    assert "alias 'Apple Mail!' is already used by program apple-mail" in problem
    assert problem.startswith(f"{thunderbird}:{_line_of(thunderbird, 'Apple Mail!')}:")


def test_a_version_claimed_by_two_guides_is_reported_where_it_cannot_be_reached(
    kb_copy: Path,
) -> None:
    outlook = kb_copy / "outlook.yaml"
    _replace(outlook, 'versions: ["2003"]', 'versions: ["2003", "2013"]')
    (problem,) = _problems(kb_copy)
    assert "guides.0.versions.1: 'Outlook 2013' leads to outlook-2010-2016" in problem


def test_a_port_in_a_step_that_the_server_does_not_have_is_reported(kb_copy: Path) -> None:
    android = kb_copy / "android.yaml"
    _replace(android, "465 für Postausgang", "466 für Postausgang")
    (problem,) = _problems(kb_copy)
    assert "port 466 is not an endpoint in server.yaml" in problem
    assert problem.startswith(f"{android}:{_line_of(android, '466 für')}:")


def test_a_port_table_pairing_a_port_with_the_wrong_security_is_reported(kb_copy: Path) -> None:
    outlook = kb_copy / "outlook.yaml"
    text = outlook.read_text(encoding="utf-8")
    # Outlook 2010/13/16's table: port 143 is "TLS" (STARTTLS); make it "SSL".
    start = text.index("- text: 'Port: 143'")
    end = text.index("Verbindungstyp: TLS'", start) + len("Verbindungstyp: TLS'")
    changed = text[:start] + text[start:end].replace(": TLS'", ": SSL'") + text[end:]
    outlook.write_text(changed, encoding="utf-8")
    (problem,) = _problems(kb_copy)
    assert "port 143 is listed as tls but is starttls in server.yaml" in problem


def test_a_sentence_pairing_starttls_with_an_ssl_port_is_reported(kb_copy: Path) -> None:
    _replace(kb_copy / "thunderbird.yaml", "Port 143 oder 110", "Port 993 oder 110")
    (problem,) = _problems(kb_copy)
    assert "port 993 is paired with starttls here but is tls in server.yaml" in problem


def test_a_faq_entry_translated_only_halfway_is_reported(kb_copy: Path) -> None:
    faq = kb_copy / "faq.yaml"
    text = faq.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    # Drop the English answer of the first entry (and its hash).
    index = next(i for i, line in enumerate(lines) if line.lstrip().startswith("en: 'Sending"))
    faq.write_text("".join(lines[:index] + lines[index + 2 :]), encoding="utf-8")
    (problem,) = _problems(kb_copy, translations=True)
    assert problem.startswith(f"{faq}:{_line_of(faq, 'Mailversand und Mailabruf')}:")
    assert "faq.0.answer: no English translation of 'Mailversand und Mailabruf" in problem


def test_kb_validate_says_when_a_new_alias_needs_an_nlu_export_and_retraining(
    kb_copy: Path,
) -> None:
    assert "lotse nlu export" not in _lotse("kb", "validate").stdout
    _replace(kb_copy / "thunderbird.yaml", "'TB'", "'TB', 'Betterbird'")
    result = _lotse("kb", "validate", str(kb_copy))
    assert result.returncode == 0
    assert "bitte `lotse nlu export` ausführen" in result.stdout
