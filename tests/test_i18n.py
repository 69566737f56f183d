"""German is the source language; the English catalog translates every German text in the code.

The German texts stand in the code as gettext message ids (`_("…")`, `tr.gettext("…")`, or
`N_("…")` where a text is written far from where it is translated).
These tests extract them the way `scripts/update-catalogs` does (same `babel.cfg`, same
keywords) and hold the English catalog `bot/i18n/locale/en/LC_MESSAGES/lotse.po` against them.
"""

from __future__ import annotations

import ast
import configparser
import dataclasses
import re
from collections.abc import Iterable, Iterator
from datetime import date
from functools import cache
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from pydantic import BaseModel

from bot.i18n import DOMAIN, LOCALE_DIR, pick_locale, translator
from bot.knowledge.loader import load_knowledge
from bot.knowledge.models import Guide, Localized, Step, StepItem

ROOT = Path(__file__).resolve().parents[1]
ENGLISH_PO = LOCALE_DIR / "en" / "LC_MESSAGES" / f"{DOMAIN}.po"

# The keywords `scripts/update-catalogs` passes to `pybabel extract --no-default-keywords`.
KEYWORDS: dict[str, None] = {"_": None, "gettext": None, "N_": None}

HOW_TO_FIX = (
    "Run scripts/update-catalogs, then translate the new or changed entries in "
    f"{ENGLISH_PO.relative_to(ROOT)} (fill in msgstr, delete the 'fuzzy' flag)."
)

PLACEHOLDER = re.compile(r"\{[^{}]*\}")
INFORMAL = re.compile(r"\b(du|dich|dir|dein|deine|deinen|deinem|deiner)\b", re.IGNORECASE)


def _method_map() -> list[tuple[str, str]]:
    """The `[method: pattern]` sections of babel.cfg as (pattern, method) pairs."""
    config = configparser.ConfigParser()
    config.read(ROOT / "babel.cfg", encoding="utf-8")
    pairs = [section.split(":", 1) for section in config.sections()]
    return [(pattern.strip(), method.strip()) for method, pattern in pairs]


@cache
def code_messages() -> dict[str, list[str]]:
    """Every German message id in the code, with the places (file:line) that use it."""
    found: dict[str, list[str]] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        ROOT, method_map=_method_map(), keywords=KEYWORDS
    ):
        assert isinstance(message, str), f"{filename}:{lineno}: plural or context message"
        found.setdefault(message, []).append(f"{filename}:{lineno}")
    return found


@cache
def english_catalog() -> Catalog:
    with ENGLISH_PO.open("rb") as handle:
        return read_po(handle, locale="en", domain=DOMAIN)


def english_messages() -> list[Message]:
    return [message for message in english_catalog() if message.id]


def _translation(message: Message) -> str:
    assert isinstance(message.string, str)
    return message.string


def test_the_code_has_german_texts_to_translate() -> None:
    assert len(code_messages()) > 20
    assert "Welches Mailprogramm benutzen Sie?" in code_messages()


def test_every_german_text_in_the_code_has_an_english_translation() -> None:
    catalog = english_catalog()
    untranslated = []
    for german, places in code_messages().items():
        entry = catalog.get(german)
        if entry is None or entry.fuzzy or not entry.string:
            state = "missing" if entry is None else "fuzzy" if entry.fuzzy else "empty"
            untranslated.append(f"  {state}: {german!r} ({', '.join(places)})")
    assert not untranslated, "German texts without English translation:\n" + "\n".join(
        [*untranslated, HOW_TO_FIX]
    )


def test_the_english_catalog_has_no_entries_the_code_no_longer_uses() -> None:
    unused = [m.id for m in english_messages() if m.id not in code_messages()]
    obsolete = list(english_catalog().obsolete)
    assert not unused and not obsolete, (
        f"Entries no longer in the code: {unused + obsolete!r}\n"
        "Run scripts/update-catalogs to drop them."
    )


def test_no_english_entry_is_fuzzy_or_empty() -> None:
    bad = [m.id for m in english_messages() if m.fuzzy or not m.string]
    assert not bad, f"Fuzzy or empty entries: {bad!r}\n{HOW_TO_FIX}"


def test_translations_keep_every_placeholder() -> None:
    for message in english_messages():
        german, english = str(message.id), _translation(message)
        assert sorted(PLACEHOLDER.findall(english)) == sorted(PLACEHOLDER.findall(german)), (
            f"Placeholders differ between {german!r} and {english!r}"
        )


def test_translations_keep_line_breaks_and_bullets() -> None:
    for message in english_messages():
        german, english = str(message.id), _translation(message)
        for mark in ("\n", "•"):
            assert english.count(mark) == german.count(mark), (
                f"{mark!r} count differs between {german!r} and {english!r}"
            )


def test_translations_use_english_quotation_marks() -> None:
    for message in english_messages():
        english = _translation(message)
        assert "„" not in english, f"German opening quote in {english!r}; use “…”"


def test_german_texts_address_the_user_formally() -> None:
    informal = {
        german: places for german, places in code_messages().items() if INFORMAL.search(german)
    }
    assert not informal, f"Texts that say 'du' instead of 'Sie': {informal!r}"


def test_english_translator_returns_the_english_text() -> None:
    assert (
        translator("en").gettext("Welches Mailprogramm benutzen Sie?")
        == "Which mail program do you use?"
    )


def test_german_translator_returns_the_source_text_unchanged() -> None:
    assert translator("de").gettext("Welches Mailprogramm benutzen Sie?") == (
        "Welches Mailprogramm benutzen Sie?"
    )


@pytest.mark.parametrize(
    ("requested", "locale"),
    [("en-GB", "en"), ("en_US", "en"), ("EN", "en"), ("de-AT", "de"), ("fr", "de"), (None, "de")],
)
def test_pick_locale_falls_back_to_german(requested: str | None, locale: str) -> None:
    assert pick_locale(requested) == locale


def test_an_unsupported_language_gets_the_german_texts() -> None:
    assert translator("fr").locale == "de"


@pytest.mark.parametrize(
    ("locale", "number", "day"),
    [("de", "1.234,5", "27.11.2026"), ("en", "1,234.5", "Nov 27, 2026")],
)
def test_numbers_and_dates_follow_the_locale(locale: str, number: str, day: str) -> None:
    tr = translator(locale)
    assert tr.number(1234.5) == number
    assert tr.date(date(2026, 11, 27)) == day


def _untranslated_knowledge(value: object, where: str, seen: set[int]) -> Iterator[str]:
    """Every text in the loaded knowledge that a user would see in German only: a `Localized`
    without English, a step or item without `en`, a guide without its English title."""
    if id(value) in seen or isinstance(value, str | int | float | bool | None):
        return
    seen.add(id(value))
    if isinstance(value, Localized):
        if not value.en:
            yield f"{where}: {value.de!r}"
        return
    if isinstance(value, Step | StepItem | Guide) and value.en is None:
        yield f"{where}: {getattr(value, 'text', getattr(value, 'title', ''))!r}"
    if isinstance(value, BaseModel):
        fields: Iterable[tuple[str, object]] = (
            (n, getattr(value, n)) for n in type(value).model_fields
        )
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = ((f.name, getattr(value, f.name)) for f in dataclasses.fields(value))
    elif isinstance(value, dict):
        fields = ((str(k), v) for k, v in value.items())
    elif isinstance(value, list | tuple):
        fields = ((str(i), v) for i, v in enumerate(value))
    else:
        return
    for name, child in fields:
        yield from _untranslated_knowledge(child, f"{where}.{name}", seen)


def test_every_knowledge_text_users_see_has_a_current_english_version() -> None:
    # Loaded as the running bot loads it: a stale English text is dropped, so it counts too.
    knowledge = load_knowledge(ROOT / "knowledge")
    missing = list(_untranslated_knowledge(knowledge, "knowledge", set()))
    assert not missing, (
        "Knowledge texts without a current English version (see knowledge/README.md, "
        "'Deutsch und Englisch'; `lotse kb translations` lists them):\n" + "\n".join(missing)
    )


def test_gettext_is_called_with_literal_texts_only() -> None:
    """A computed message id is not extracted into the catalog and stays German for everyone."""
    computed = []
    for path in sorted((ROOT / "bot").rglob("*.py")):
        if path.is_relative_to(ROOT / "bot" / "i18n"):  # the translator itself
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name not in KEYWORDS:
                continue
            first = node.args[0] if node.args else None
            if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                computed.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    assert not computed, "gettext with a computed text:\n" + "\n".join(computed)
