"""`lotse kb translations`: the English texts that are missing or stale, for admins to review.

Each line names file and line, the German text, the English one and the hash to store. After
reviewing, `--accept` writes the new hash into every stale entry (missing translations have to
be written by hand); the rest of the file stays exactly as it was, comments included.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from bot.i18n import Translator
from bot.knowledge.loader import KnowledgeFiles, read_files
from bot.knowledge.translations import Translation, open_translations

__all__ = ["run_translations"]


def run_translations(directory: Path, *, accept: bool, tr: Translator) -> int:
    """`tr`: the admin's language (the texts under review are shown as they are)."""
    _ = tr.gettext
    files = read_files(directory)
    if files.problems:
        print("\n".join(str(p) for p in files.problems), file=sys.stderr)
        return 2
    open_items = [
        (name, item) for name, model in files.models.items() for item in open_translations(model)
    ]
    if not open_items:
        print(_("Alle deutschen Texte haben eine aktuelle englische Übersetzung."))
        return 0
    edits: dict[str, list[tuple[int, int, str]]] = {}
    for name, item in open_items:
        where = files.problem(name, item.hash_path if item.stale else item.path, "")
        state = _("FEHLT") if item.missing else _("VERALTET")
        print(f"{where.file_line}: {state} de_hash: '{item.expected_hash}'")
        print(f"  de: {item.german}")
        print(f"  en: {item.english or '–'}")
        span = _hash_span(files, name, item) if item.stale else None
        if span is not None:
            edits.setdefault(name, []).append((*span, item.expected_hash))
    if accept:
        for name, spans in edits.items():
            path = files.documents[name].path
            text = path.read_text(encoding="utf-8")
            for start, end, new in sorted(spans, reverse=True):  # back to front: spans hold
                text = text[:start] + f"'{new}'" + text[end:]
            path.write_text(text, encoding="utf-8")
        accepted = sum(len(s) for s in edits.values())
        print(_("{count} Hash(es) übernommen.").format(count=accepted))
    missing = sum(1 for _, item in open_items if item.missing)
    return 1 if missing or not accept else 0


def _hash_span(files: KnowledgeFiles, name: str, item: Translation) -> tuple[int, int] | None:
    """Where the value of an existing `de_hash` stands in the file; None when there is none."""
    node: yaml.Node | None = files.documents[name].node
    for part in item.hash_path:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            node = node.value[part] if part < len(node.value) else None
        else:
            node = None
        if node is None:
            return None
    if node is None:
        return None
    return node.start_mark.index, node.end_mark.index
