"""`lotse kb diff OLD [NEW]`: per guide, what a user would see differently.

OLD and NEW are knowledge directories or git revisions (NEW defaults to the working tree).
Guides are compared as the bot shows them, in German and in English (every step, for each
protocol the guide distinguishes), plus what changes how users reach them (aliases, versions),
the server settings, FAQ answers, settings cards and troubleshooting answers in both languages.
Exit status as with diff(1): 0 same, 1 different, 2 trouble.
"""

from __future__ import annotations

import difflib
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bot.i18n import translator
from bot.knowledge.base import KnowledgeBase
from bot.knowledge.loader import KnowledgeError, load_knowledge
from bot.knowledge.render import guide_text, settings_text

__all__ = ["LOCALES", "describe_changes", "run_diff"]


def run_diff(default_dir: Path, old: str, new: str | None) -> int:
    with tempfile.TemporaryDirectory() as scratch:
        try:
            before = load_knowledge(_materialise(old, default_dir, Path(scratch) / "old"))
            after = load_knowledge(
                _materialise(new, default_dir, Path(scratch) / "new") if new else default_dir
            )
        except (KnowledgeError, OSError, subprocess.CalledProcessError) as error:
            print(f"cannot compare: {error}", file=sys.stderr)
            return 2
    lines = list(describe_changes(before, after))
    print("\n".join(lines) if lines else "No differences a user would see.")
    return 1 if lines else 0


def _materialise(spec: str, default_dir: Path, target: Path) -> Path:
    """A directory as it is, or the knowledge directory at a git revision, written to `target`."""
    if Path(spec).is_dir():
        return Path(spec)
    top = Path(_git(default_dir, "rev-parse", "--show-toplevel").strip())
    inside = default_dir.resolve().relative_to(top.resolve()).as_posix()
    target.mkdir(parents=True)
    for name in _git(top, "ls-tree", "--name-only", f"{spec}:{inside}").split():
        (target / name).write_text(_git(top, "show", f"{spec}:{inside}/{name}"), encoding="utf-8")
    return target


def _git(directory: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(directory), *args], capture_output=True, text=True, check=True
    ).stdout


LOCALES = ("de", "en")


def describe_changes(before: KnowledgeBase, after: KnowledgeBase) -> Iterator[str]:
    tr = translator("de")
    for program_id in sorted(before.programs.keys() & after.programs.keys()):
        old_names = set(before.programs[program_id].aliases)
        new_names = set(after.programs[program_id].aliases)
        if old_names != new_names:
            changed = [f"-{a}" for a in sorted(old_names - new_names)]
            changed += [f"+{a}" for a in sorted(new_names - old_names)]
            yield f"== program {program_id}"
            yield "aliases: " + ", ".join(changed)
    old_guides = {**before.guides, **before.unpublished}
    new_guides = {**after.guides, **after.unpublished}
    for guide_id in sorted(old_guides.keys() - new_guides.keys()):
        yield f"== {guide_id}: removed"
    for guide_id in sorted(new_guides.keys() - old_guides.keys()):
        yield f"== {guide_id}: new guide '{new_guides[guide_id].title}'"
    for guide_id in sorted(old_guides.keys() & new_guides.keys()):
        old, new = old_guides[guide_id], new_guides[guide_id]
        changes: list[str] = []
        if old.published != new.published:
            changes.append(f"published: {old.published} -> {new.published}")
        for field in ("aliases", "versions"):
            gone = sorted(set(getattr(old, field)) - set(getattr(new, field)))
            added = sorted(set(getattr(new, field)) - set(getattr(old, field)))
            if gone or added:
                changes.append(
                    f"{field}: " + ", ".join([f"-{v}" for v in gone] + [f"+{v}" for v in added])
                )
        protocols: list[str | None] = [None]
        if old.differs_by_protocol() or new.differs_by_protocol():
            protocols = ["imap", "pop3"]
        for locale in LOCALES:
            for protocol in protocols:
                label = f" ({protocol})" if protocol else ""
                label += " [en]" if locale == "en" else ""
                changes.extend(
                    _unified(
                        guide_text(old.localized(locale), protocol, translator(locale)),
                        guide_text(new.localized(locale), protocol, translator(locale)),
                        f"{guide_id}{label} before",
                        f"{guide_id}{label} after",
                    )
                )
        if changes:
            yield f"== {guide_id}"
            yield from changes
    server = list(
        _unified(settings_text(before, None, tr), settings_text(after, None, tr), "before", "after")
    )
    if server:
        yield "== server settings"
        yield from server
    old_texts, new_texts = _answers(before), _answers(after)
    for key in sorted(old_texts.keys() | new_texts.keys()):
        if old_texts.get(key) != new_texts.get(key):
            yield f"== {key}"
            yield from _unified(old_texts.get(key, ""), new_texts.get(key, ""), "before", "after")


def _answers(knowledge: KnowledgeBase) -> dict[str, str]:
    """Answers outside the guides, per language: "FAQ why-encrypt [en]" -> its text."""
    texts: dict[str, str] = {}
    for locale in LOCALES:
        suffix = " [en]" if locale == "en" else ""
        for entry in knowledge.faq:
            texts[f"FAQ {entry.id}{suffix}"] = "\n".join(
                [entry.question.get(locale), entry.answer.get(locale)]
            )
        for card in knowledge.cards.values():
            lines = [card.name.get(locale), *(note.text.get(locale) for note in card.notes)]
            lines += [f"setup: {way}" for way in card.setup_ways]
            texts[f"card {card.id}{suffix}"] = "\n".join(lines)
        for item in knowledge.troubleshooting.entries:
            texts[f"troubleshooting {item.id}{suffix}"] = "\n".join(
                [item.explanation.get(locale), item.fix.get(locale)]
            )
        for guide in [*knowledge.guides.values(), *knowledge.unpublished.values()]:
            for number, step in enumerate(guide.steps, 1):
                for help_entry in step.help:
                    key = f"help {guide.id} step {number} {help_entry.keywords[0]}{suffix}"
                    texts[key] = help_entry.text.get(locale)
    return texts


def _unified(before: str, after: str, old_name: str, new_name: str) -> Iterator[str]:
    yield from (
        line.rstrip("\n")
        for line in difflib.unified_diff(
            before.splitlines(), after.splitlines(), old_name, new_name, lineterm="", n=1
        )
    )
