"""English beside German: which translations are missing or stale, and the hash that settles it.

Every English text in `knowledge/` stores `de_hash`, the first eight hex digits of the SHA-256 of
the German text it translates (for a guide: of its title and label together). When an admin
changes the German, the stored hash no longer matches: the English is stale until someone has
reviewed it and written the new hash, which the checks and `lotse kb translations` print.
`lotse kb translations --accept` writes the new hashes after that review.

`lotse kb validate` and the tests reject a missing or stale translation. The running bot still
takes a German change at once (an urgent fix must not wait for a translator) but shows English
readers the German text until the translation is reviewed (`without_stale`).
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel

from bot.knowledge.models import Guide, Localized, Step, StepItem

__all__ = [
    "ModelT",
    "Translation",
    "YamlPath",
    "open_translations",
    "text_hash",
    "translations",
    "without_stale",
]

YamlPath = tuple[str | int, ...]


def text_hash(*german: str) -> str:
    """The short hash of one German text (or of several, such as a guide's title and label)."""
    joined = "\n".join(unicodedata.normalize("NFC", text.strip()) for text in german)
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()[:8]


@dataclass(frozen=True)
class Translation:
    """One place that needs an English text: what it says now and what it should store."""

    path: YamlPath  # the object holding the German text
    german: str
    english: str | None
    stored_hash: str | None
    expected_hash: str

    @property
    def missing(self) -> bool:
        return self.english is None

    @property
    def stale(self) -> bool:
        return self.english is not None and self.stored_hash != self.expected_hash

    @property
    def hash_path(self) -> YamlPath:
        """Where `de_hash` stands (or belongs) in the YAML."""
        return (*self.path, "de_hash")

    def message(self) -> str:
        if self.missing:
            return (
                f"no English translation of '{_short(self.german)}': add en: '…' "
                f"(a faithful translation) and de_hash: '{self.expected_hash}'"
            )
        was = f"'{self.stored_hash}'" if self.stored_hash else "missing"
        return (
            f"the English text may be stale: de_hash is {was}, the German text now hashes to "
            f"'{self.expected_hash}'. Check that en still translates '{_short(self.german)}', "
            f"then set de_hash: '{self.expected_hash}' (or run `lotse kb translations --accept`)"
        )


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def translations(model: BaseModel, path: YamlPath = ()) -> Iterator[Translation]:
    """Every translatable text in `model` (a file's model), with its YAML path."""
    if isinstance(model, Localized):
        yield Translation(path, model.de, model.en, model.de_hash, text_hash(model.de))
        return
    if isinstance(model, Step | StepItem):
        yield Translation(path, model.text, model.en, model.de_hash, text_hash(model.text))
    elif isinstance(model, Guide):
        english = model.en
        yield Translation(
            (*path, "en"),
            f"{model.title} / {model.label}",
            f"{english.title} / {english.label}" if english else None,
            english.de_hash if english else None,
            text_hash(model.title, model.label),
        )
    for name in type(model).model_fields:
        if name == "en":
            continue
        yield from _walk(getattr(model, name), (*path, name))


def _walk(value: object, path: YamlPath) -> Iterator[Translation]:
    if isinstance(value, BaseModel):
        yield from translations(value, path)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, (*path, index))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, (*path, str(key)))


def open_translations(model: BaseModel) -> list[Translation]:
    """The translations that are missing or stale."""
    return [t for t in translations(model) if t.missing or t.stale]


ModelT = TypeVar("ModelT", bound=BaseModel)


def without_stale(model: ModelT) -> ModelT:
    """`model` with every English text that no longer translates its German removed, so that
    an English reader sees the current German rather than an outdated translation."""
    update: dict[str, object] = {}
    if isinstance(model, Localized | Step | StepItem) and model.en is not None:
        german = model.de if isinstance(model, Localized) else model.text
        if model.de_hash != text_hash(german):
            update["en"] = None
    elif (
        isinstance(model, Guide)
        and model.en is not None
        and model.en.de_hash != text_hash(model.title, model.label)
    ):
        update["en"] = None
    for name in type(model).model_fields:
        if name in update:
            continue
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            update[name] = without_stale(value)
        elif isinstance(value, list) and any(isinstance(v, BaseModel) for v in value):
            update[name] = [without_stale(v) if isinstance(v, BaseModel) else v for v in value]
    return model.model_copy(update=update)
