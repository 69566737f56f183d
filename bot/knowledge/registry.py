"""The live knowledge base: reloaded when admins edit `knowledge/`, old revisions kept for
conversations that are in the middle of a guide.

The directory is polled (a content hash every few seconds) rather than watched with inotify:
it is a handful of small files, and polling also works on network and container mounts where
file events do not arrive. A change is loaded and validated as a whole and swapped in at once;
an invalid change is rejected and the last good revision stays in service.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bot.i18n import SOURCE_LOCALE, Translator, translator
from bot.knowledge.base import KnowledgeBase
from bot.knowledge.diff import describe_changes
from bot.knowledge.loader import KnowledgeError, knowledge_revision, load_knowledge

__all__ = ["GERMAN", "KnowledgeRegistry", "Listener", "ReloadOutcome"]

log = logging.getLogger(__name__)
GERMAN = translator(SOURCE_LOCALE)  # the log's language


@dataclass(frozen=True)
class ReloadOutcome:
    """What a reload did: a new revision with the guides that changed, or a rejection."""

    revision: str
    changed_guides: tuple[str, ...] = ()
    report: str | None = None  # the validation report when the change was rejected

    @property
    def rejected(self) -> bool:
        return self.report is not None

    def message(self, tr: Translator = GERMAN) -> str:
        """A short note for the agents' chat (in their language) and the log (German)."""
        _ = tr.gettext
        if self.report is not None:
            rejected = _(
                "Änderung an der Wissensbasis abgelehnt; es gilt weiter die letzte gültige Fassung."
            )
            return f"{rejected}\n{self.report}"
        changed = ", ".join(self.changed_guides) or _("keine Anleitung")
        return _("Wissensbasis neu geladen (Revision {revision}). Geändert: {changed}.").format(
            revision=self.revision, changed=changed
        )


Listener = Callable[[ReloadOutcome, KnowledgeBase], None]


class KnowledgeRegistry:
    def __init__(self, directory: Path, knowledge: KnowledgeBase, *, keep: int = 20) -> None:
        self.directory = directory
        self.current = knowledge
        self._kept: OrderedDict[str, KnowledgeBase] = OrderedDict({knowledge.revision: knowledge})
        self._keep = keep
        self._rejected_revision: str | None = None
        self._listeners: list[Listener] = []

    @classmethod
    def load(cls, directory: Path) -> KnowledgeRegistry:
        """Load the directory (raises KnowledgeError when it is invalid: the bot must not start)."""
        return cls(directory, load_knowledge(directory))

    @classmethod
    def fixed(cls, knowledge: KnowledgeBase) -> KnowledgeRegistry:
        """A registry that never reloads (tests, tools)."""
        return cls(Path(), knowledge)

    def on_reload(self, listener: Listener) -> None:
        """Call `listener(outcome, current)` after every reload or rejection."""
        self._listeners.append(listener)

    def get(self, revision: str | None) -> KnowledgeBase:
        """The knowledge a conversation started its guide with, while it is kept; else current."""
        if revision is not None and revision in self._kept:
            return self._kept[revision]
        return self.current

    def reload(self) -> ReloadOutcome | None:
        """Load the directory if it changed; None when nothing changed since the last look."""
        revision = knowledge_revision(self.directory)
        if revision in (self.current.revision, self._rejected_revision):
            return None
        try:
            knowledge = load_knowledge(self.directory)
        except KnowledgeError as error:
            self._rejected_revision = revision
            outcome = ReloadOutcome(revision, report=error.report())
            log.error("%s", outcome.message())
        else:
            previous, self.current = self.current, knowledge
            self._rejected_revision = None
            self._kept[knowledge.revision] = knowledge
            while len(self._kept) > self._keep:
                self._kept.popitem(last=False)
            outcome = ReloadOutcome(knowledge.revision, _changed_guides(previous, knowledge))
            log.warning("%s", outcome.message())
        for listener in self._listeners:
            listener(outcome, self.current)
        return outcome

    async def watch(self, interval: float = 2.0) -> None:
        """Reload whenever the directory changes; runs until cancelled."""
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(self.reload)
            except OSError as error:  # a file vanished mid-read: look again next round
                log.warning("knowledge directory not readable: %s", error)


def _changed_guides(before: KnowledgeBase, after: KnowledgeBase) -> tuple[str, ...]:
    guides = {*before.guides, *before.unpublished, *after.guides, *after.unpublished}
    headers = (line[3:] for line in describe_changes(before, after) if line.startswith("== "))
    # Other headers name FAQ entries, cards, help texts and the server settings.
    return tuple(sorted({h.split(":")[0] for h in headers} & guides))
