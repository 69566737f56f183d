"""The guides in `knowledge/` are the seed page's instructions, word for word.

The seed (`../shared/seed/transportverschluesselung.txt`, or `LOTSE_SEED_FILE`) is the ground
truth for every instruction. These tests parse it independently of the knowledge loader and
compare each guide line by line, including the nesting of the port tables. A guide from the seed
says `source: seed`; the one deliberate change is the seed's typo "SMPT-Server" (CORRECTIONS).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import pytest

from bot.knowledge.base import KnowledgeBase
from bot.knowledge.loader import load_knowledge
from bot.knowledge.models import Step, StepItem

KNOWLEDGE_DIR = Path(__file__).parents[1] / "knowledge"
DEFAULT_SEED = Path(__file__).parents[2] / "shared" / "seed" / "transportverschluesselung.txt"

# Guide id -> the seed's heading for it, in the seed's order (the ids are fixed by DESIGN.md).
HEADINGS: dict[str, str] = {
    "outlook-2003": "Microsoft Outlook 2003",
    "outlook-2007": "Microsoft Outlook 2007",
    "outlook-2010-2016": "Microsoft Outlook 2010/13/16",
    "outlook-2019-365": "Microsoft Outlook 2019/365",
    "thunderbird": "Mozilla Thunderbird (60.3.1)",
    "apple-mail-el-capitan": "Apple Mail (El Capitan)",
    "apple-mail-high-sierra": "Apple Mail (High Sierra)",
    "ios": "Apple iPhone (iOS 12)",
    "android": "Android 6.X (Beispiel Samsung)",
}

# Deliberate changes to the seed's wording (also recorded in a comment in the YAML and in
# knowledge/README.md): guide id -> (seed text, knowledge text).
CORRECTIONS: dict[str, tuple[str, str]] = {
    "apple-mail-el-capitan": ('Menü "SMPT-Server"', 'Menü "SMTP-Server"'),
}

# (depth, text): 0 for a numbered step or a closing paragraph, 1 and 2 for nested bullets.
Line = tuple[int, str]

_STEP = re.compile(r"^  \d+\. (?P<text>\S.*)$")
_BULLET = re.compile(r"^(?P<indent>(?:  )+)• (?P<text>\S.*)$")


def _seed_path() -> Path:
    configured = os.environ.get("LOTSE_SEED_FILE")
    return Path(configured) if configured else DEFAULT_SEED


@pytest.fixture(scope="module")
def seed_sections() -> dict[str, list[str]]:
    """The seed's lines under each guide's heading, up to the next heading."""
    path = _seed_path()
    if not path.is_file():
        pytest.skip(f"seed file not found: {path} (set LOTSE_SEED_FILE to point at it)")
    lines = path.read_text(encoding="utf-8").splitlines()
    starts: dict[str, int] = {}
    for guide_id, heading in HEADINGS.items():
        assert lines.count(heading) == 1, f"heading {heading!r} must occur exactly once in {path}"
        starts[guide_id] = lines.index(heading)
    bounds = [*sorted(starts.values()), len(lines)]
    sections: dict[str, list[str]] = {}
    for guide_id, start in starts.items():
        end = bounds[bounds.index(start) + 1]
        sections[guide_id] = lines[start + 1 : end]
    return sections


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return load_knowledge(KNOWLEDGE_DIR)


def _seed_lines(section: Sequence[str]) -> list[Line]:
    """Flatten one seed section into (depth, text), failing on any line it does not understand."""
    result: list[Line] = []
    for line in section:
        if not line.strip():
            continue
        if step := _STEP.match(line):
            result.append((0, step["text"]))
        elif bullet := _BULLET.match(line):
            depth = len(bullet["indent"]) // 2 - 1
            assert depth in (1, 2), f"unexpected bullet indentation: {line!r}"
            result.append((depth, bullet["text"]))
        elif not line.startswith(" "):
            result.append((0, line))  # a paragraph after the list, e.g. the POP3 note
        else:
            raise AssertionError(f"unexpected line in seed: {line!r}")
    return result


def _item_lines(items: Sequence[StepItem], depth: int) -> list[Line]:
    result: list[Line] = []
    for item in items:
        result.append((depth, item.text))
        result.extend(_item_lines(item.items, depth + 1))
    return result


def _guide_lines(steps: Sequence[Step]) -> list[Line]:
    result: list[Line] = []
    for step in steps:
        result.append((0, step.text))
        result.extend(_item_lines(step.items, 1))
    return result


def _closing_paragraphs(section: Sequence[str]) -> list[str]:
    return [line for line in section if line.strip() and not line.startswith(" ")]


def test_exactly_the_nine_guides_named_in_the_design_say_they_come_from_the_seed(
    kb: KnowledgeBase,
) -> None:
    assert {guide.id for guide in kb.guides.values() if guide.from_seed} == set(HEADINGS)


def test_every_guide_title_is_its_seed_heading(kb: KnowledgeBase) -> None:
    for guide_id, heading in HEADINGS.items():
        assert kb.guides[guide_id].title == heading


def test_every_step_of_every_guide_is_the_seed_text_word_for_word(
    kb: KnowledgeBase, seed_sections: dict[str, list[str]]
) -> None:
    for guide_id, section in seed_sections.items():
        expected = _seed_lines(section)
        assert expected, f"no steps found in the seed for {guide_id}"
        if guide_id in CORRECTIONS:
            wrong, right = CORRECTIONS[guide_id]
            assert sum(wrong in text for _, text in expected) == 1, guide_id
            expected = [(depth, text.replace(wrong, right)) for depth, text in expected]
        assert _guide_lines(kb.guides[guide_id].steps) == expected, guide_id


def test_the_paragraph_after_a_seed_list_is_a_last_step_only_for_pop3(
    kb: KnowledgeBase, seed_sections: dict[str, list[str]]
) -> None:
    for guide_id, section in seed_sections.items():
        paragraphs = _closing_paragraphs(section)
        guide = kb.guides[guide_id]
        pop3_only = [step.text for step in guide.steps if step.only_for == ["pop3"]]
        assert pop3_only == paragraphs, guide_id
        if paragraphs:
            assert guide.steps[-1].text == paragraphs[-1], guide_id
        assert all(step.only_for in ([], ["pop3"]) for step in guide.steps), guide_id
    assert _closing_paragraphs(seed_sections["outlook-2010-2016"])
    assert _closing_paragraphs(seed_sections["outlook-2019-365"])


def test_outlook_2010_2016_shows_four_steps_for_imap_and_five_for_pop3(
    kb: KnowledgeBase,
) -> None:
    guide = kb.guides["outlook-2010-2016"]
    assert len(guide.steps_for("imap")) == 4
    assert len(guide.steps_for("pop3")) == 5


def test_no_alias_is_used_twice_across_all_program_files(kb: KnowledgeBase) -> None:
    aliases = [alias for program in kb.programs.values() for alias in program.aliases]
    aliases += [alias for guide in kb.guides.values() for alias in guide.aliases]
    folded = [alias.casefold() for alias in aliases]
    duplicates = sorted({alias for alias in folded if folded.count(alias) > 1})
    assert duplicates == []
