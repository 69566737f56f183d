"""User-facing text through gettext catalogs (Babel). Room: shared below every other.

German is the source language: the German texts stand in the code as message ids, so they are
reviewed together with it; `locale/en/LC_MESSAGES/lotse.po` translates every one of them.
Catalogs are compiled in memory from the `.po` files (a few milliseconds, once per process),
so a checkout needs no build step; a compiled `.mo` next to the `.po` is used when it is newer.

A text is translated where it is shown, in its reader's language. Where it is written far
from there (an error raised in a transaction and shown by the agents' desk), `N_("…")` marks
it for extraction and a `Text` carries it with its parameters to the place that translates it.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache, lru_cache
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.dates import format_date as babel_format_date
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import NullTranslations, Translations

__all__ = [
    "DOMAIN",
    "LOCALE_DIR",
    "N_",
    "SOURCE_LOCALE",
    "SUPPORTED_LOCALES",
    "Text",
    "Translator",
    "pick_locale",
    "translator",
]

DOMAIN = "lotse"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
SOURCE_LOCALE = "de"
SUPPORTED_LOCALES = ("de", "en")


def pick_locale(requested: str | None, default: str = SOURCE_LOCALE) -> str:
    """The supported locale for a language tag such as "en-GB" or "de_AT"; else `default`."""
    if requested:
        language = requested.replace("-", "_").split("_")[0].lower()
        if language in SUPPORTED_LOCALES:
            return language
    return default


@cache
def _translations(locale: str) -> NullTranslations:
    if locale == SOURCE_LOCALE:
        return NullTranslations()
    po_path = LOCALE_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
    mo_path = po_path.with_suffix(".mo")
    if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
        with mo_path.open("rb") as handle:
            return Translations(handle, domain=DOMAIN)
    with po_path.open("rb") as handle:
        catalog = read_po(handle, locale=locale, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


@lru_cache(maxsize=1024)  # ports and step numbers, on every turn; Babel parses the locale each time
def _number(value: int | float, locale: str) -> str:
    return format_decimal(value, locale=locale)


@dataclass(frozen=True)
class Translator:
    """Texts, numbers and dates for one locale."""

    locale: str

    def gettext(self, message: str) -> str:
        return _translations(self.locale).gettext(message)

    def number(self, value: int | float) -> str:
        return _number(value, self.locale)

    def date(self, value: date | datetime) -> str:
        return babel_format_date(value, format="medium", locale=self.locale)

    @property
    def language_name(self) -> str:
        return self.name_of_language(self.locale)

    def name_of_language(self, locale: str) -> str:
        """`locale`'s language named in this translator's language ("en" -> "Englisch")."""
        try:
            return Locale.parse(locale).get_display_name(self.locale) or locale
        except (UnknownLocaleError, ValueError):  # an unknown or malformed code stays as it is
            return locale


@cache
def translator(locale: str) -> Translator:
    return Translator(pick_locale(locale))


def N_(message: str) -> str:  # gettext's usual name for it
    """Mark `message` for extraction (`scripts/update-catalogs`) without translating it here:
    it is translated where it is shown (`Text`, `TicketError`)."""
    return message


class Text:
    """A message id (German, marked with `N_`) and its parameters, translated where it is
    shown: `translated(tr)`; str() is the German text. A parameter that is a `Text` itself is
    translated with it; any other is put in as it is (names, numbers, what users wrote)."""

    __slots__ = ("message", "params")

    def __init__(self, message: str, /, **params: object) -> None:
        self.message = message
        self.params: Mapping[str, object] = params

    def translated(self, tr: Translator) -> str:
        values = {
            name: value.translated(tr) if isinstance(value, Text) else value
            for name, value in self.params.items()
        }
        return tr.gettext(self.message).format(**values)

    def __str__(self) -> str:
        return self.translated(translator(SOURCE_LOCALE))

    def __repr__(self) -> str:
        return f"Text({self.message!r}, **{dict(self.params)!r})"
