"""Load and validate the knowledge directory; report every problem with file, line and field.

`server.yaml` and `faq.yaml` have fixed names; every other `*.yaml` file holds one program family.
Numbers are read as text (`1.10` stays "1.10", not the float 1.1); pydantic turns them into ints
where a field wants one (ports).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from bot.knowledge import checks
from bot.knowledge.base import KnowledgeBase
from bot.knowledge.models import (
    CardsFile,
    DevicesFile,
    FaqFile,
    ProgramFile,
    ServerFile,
    TroubleshootingFile,
)
from bot.knowledge.translations import without_stale
from bot.normalize import normalize

__all__ = [
    "CARDS_FILE",
    "DEVICES_FILE",
    "FAQ_FILE",
    "FILE_MODELS",
    "SERVER_FILE",
    "TROUBLESHOOTING_FILE",
    "KnowledgeError",
    "KnowledgeFiles",
    "ModelT",
    "Problem",
    "knowledge_revision",
    "load_knowledge",
    "read_files",
]

SERVER_FILE = "server.yaml"
FAQ_FILE = "faq.yaml"
CARDS_FILE = "cards.yaml"
DEVICES_FILE = "devices.yaml"
TROUBLESHOOTING_FILE = "troubleshooting.yaml"

ModelT = TypeVar("ModelT", bound=BaseModel)
# Files with a fixed name; every other `*.yaml` is one program family (`ProgramFile`).
FILE_MODELS: dict[str, type[BaseModel]] = {
    SERVER_FILE: ServerFile,
    FAQ_FILE: FaqFile,
    CARDS_FILE: CardsFile,
    DEVICES_FILE: DevicesFile,
    TROUBLESHOOTING_FILE: TroubleshootingFile,
}


class _TextNumbersLoader(yaml.SafeLoader):
    """SafeLoader without the int and float resolvers, so numbers stay exactly as written."""


_TextNumbersLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if not tag.endswith((":int", ":float"))]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    field: str
    message: str

    @property
    def file_line(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file

    def __str__(self) -> str:
        field = f" {self.field}:" if self.field else ""
        return f"{self.file_line}:{field} {self.message}"


class KnowledgeError(Exception):
    """The knowledge base is invalid; `problems` says where and why."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__(self.report())

    def report(self) -> str:
        return "\n".join(str(problem) for problem in self.problems)


@dataclass
class _Document:
    path: Path
    node: yaml.Node | None
    data: Any


@dataclass
class KnowledgeFiles:
    """Every file of the directory parsed and validated on its own, before the cross checks."""

    documents: dict[str, _Document]  # file name -> parsed YAML
    models: dict[str, BaseModel]  # file name -> its validated model
    problems: list[Problem]

    def of_type(self, model: type[ModelT]) -> dict[str, ModelT]:
        return {name: m for name, m in self.models.items() if isinstance(m, model)}

    def problem(self, file: str, path: tuple[str | int, ...], message: str) -> Problem:
        doc = self.documents[file]
        return Problem(
            str(doc.path), _line_of(doc.node, path), ".".join(str(p) for p in path), message
        )


def read_files(directory: Path) -> KnowledgeFiles:
    """Parse and validate each file; problems are collected, not raised."""
    problems: list[Problem] = []
    if not directory.is_dir():
        return KnowledgeFiles({}, {}, [Problem(str(directory), None, "", "directory not found")])
    paths = _knowledge_files(directory)
    names = {p.name for p in paths}
    for required in (SERVER_FILE, FAQ_FILE):
        if required not in names:
            problems.append(Problem(str(directory / required), None, "", "file is missing"))
    documents = {doc.path.name: doc for doc in (_parse(p, problems) for p in paths) if doc}
    models: dict[str, BaseModel] = {}
    for name, doc in documents.items():
        model = _validate(doc, FILE_MODELS.get(name, ProgramFile), problems)
        if model is not None:
            models[name] = model
    files = KnowledgeFiles(documents, models, problems)
    if not files.of_type(ProgramFile) and not problems:
        problems.append(Problem(str(directory), None, "", "no program files found"))
    return files


def load_knowledge(directory: Path, *, require_translations: bool = False) -> KnowledgeBase:
    """Load every file in `directory`; raise `KnowledgeError` listing all problems found.

    With `require_translations` (`lotse kb validate`, the tests) a missing or stale English
    text is a problem too; without it (the running bot, `lotse kb diff`) a stale English text
    is dropped, so English readers see the current German until the translation is reviewed.
    """
    files = read_files(directory)
    problems = files.problems
    programs = files.of_type(ProgramFile)
    server = files.models.get(SERVER_FILE)
    faq = files.models.get(FAQ_FILE)
    cards = files.models.get(CARDS_FILE)
    devices = files.models.get(DEVICES_FILE)
    troubleshooting = files.models.get(TROUBLESHOOTING_FILE)
    problems.extend(_cross_file_problems(files))
    if not require_translations:
        programs = {name: without_stale(file) for name, file in programs.items()}
        faq = without_stale(faq) if faq is not None else None
        cards = without_stale(cards) if cards is not None else None
        troubleshooting = without_stale(troubleshooting) if troubleshooting is not None else None
    if problems or not isinstance(server, ServerFile) or not isinstance(faq, FaqFile):
        raise KnowledgeError(problems)
    knowledge = KnowledgeBase.build(
        server=server.server,
        helpdesk=server.helpdesk,
        programs=list(programs.values()),
        faq=faq.faq,
        revision=_revision(_knowledge_files(directory)),
        cards=cards.cards if isinstance(cards, CardsFile) else (),
        devices=devices if isinstance(devices, DevicesFile) else None,
        troubleshooting=(
            troubleshooting.troubleshooting
            if isinstance(troubleshooting, TroubleshootingFile)
            else ()
        ),
    )
    findings = [
        *checks.check_reachability(knowledge, programs),
        *checks.check_ports(server.server, programs),
        *(checks.check_translations(files.models) if require_translations else ()),
        *checks.check_placeholders(server.server, files.models),
        *checks.check_references(knowledge, files.models),
        *checks.check_patterns(files.models),
    ]
    if findings:
        raise KnowledgeError([files.problem(f.file, f.path, f.message) for f in findings])
    return knowledge


def _parse(path: Path, problems: list[Problem]) -> _Document | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        problems.append(Problem(str(path), None, "", f"cannot be read: {error}"))
        return None
    try:
        loader = _TextNumbersLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else None
        problems.append(Problem(str(path), line, "", f"YAML syntax error: {error.problem}"))
        return None
    except yaml.YAMLError as error:
        problems.append(Problem(str(path), None, "", f"YAML error: {error}"))
        return None
    return _Document(path, node, data)


def _validate(doc: _Document, model: type[ModelT], problems: list[Problem]) -> ModelT | None:
    try:
        return model.model_validate(doc.data)
    except ValidationError as error:
        for item in error.errors():
            path = tuple(item["loc"])
            problems.append(
                Problem(
                    str(doc.path),
                    _line_of(doc.node, path),
                    ".".join(str(part) for part in path),
                    item["msg"],
                )
            )
        return None


def _line_of(node: yaml.Node | None, path: Iterable[str | int]) -> int | None:
    """The line (1-based) of the deepest YAML node along `path` that exists."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in path:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(part):
                    child = value
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part >= 0:
            child = node.value[part] if part < len(node.value) else None
        if child is None:
            break
        node = child
        line = node.start_mark.line + 1
    return line


@dataclass(frozen=True)
class _Claim:
    owner: str
    file: str
    path: tuple[str | int, ...]


def _cross_file_problems(files: KnowledgeFiles) -> list[Problem]:
    """Ids, names and aliases must be unique across all files, or lookups would be ambiguous.

    A name claimed twice is reported at every place that claims it, so the admin who just
    added it sees the file they edited as well as the one that had it first.
    """
    claims: dict[tuple[str, str], list[_Claim]] = {}

    def claim(kind: str, value: str, owner: str, file: str, path: tuple[str | int, ...]) -> None:
        # Names compare as the lexicon sees them: "Apple Mail!" is "Apple Mail".
        key = (kind, normalize(value) if kind == "alias" else value.casefold())
        claims.setdefault(key, []).append(_Claim(owner, file, path))

    for name, file in files.of_type(ProgramFile).items():
        program = file.program
        owner = f"program {program.id}"
        claim("program id", program.id, owner, name, ("program", "id"))
        for i, alias in enumerate(program.aliases):
            claim("alias", alias, owner, name, ("program", "aliases", i))
        for g, guide in enumerate(file.guides):
            claim("guide id", guide.id, f"guide {guide.id}", name, ("guides", g, "id"))
            for i, alias in enumerate(guide.aliases):
                claim("alias", alias, f"guide {guide.id}", name, ("guides", g, "aliases", i))
    for name, cards in files.of_type(CardsFile).items():
        for c, card in enumerate(cards.cards):
            owner = f"card {card.id}"
            # A card's id shares the namespace of program ids: both are `client` values.
            claim("program id", card.id, owner, name, ("cards", c, "id"))
            for i, alias in enumerate(card.aliases):
                claim("alias", alias, owner, name, ("cards", c, "aliases", i))
    for name, devices in files.of_type(DevicesFile).items():
        for d, device in enumerate(devices.devices):
            claim("device id", device.id, f"device {device.id}", name, ("devices", d, "id"))
    for name, entries in files.of_type(TroubleshootingFile).items():
        for t, item in enumerate(entries.troubleshooting):
            owner = f"troubleshooting {item.id}"
            claim("troubleshooting id", item.id, owner, name, ("troubleshooting", t, "id"))
    for name, faq in files.of_type(FaqFile).items():
        for f, entry in enumerate(faq.faq):
            # One id may be worded once per login name rule ("login-name" for both rules).
            key = entry.id if entry.for_login_name is None else f"{entry.id}@{entry.for_login_name}"
            claim("FAQ id", key, f"FAQ entry {f + 1}", name, ("faq", f, "id"))

    problems: list[Problem] = []
    for (kind, _), places in claims.items():
        owners = {place.owner for place in places}
        if len(owners) < 2:
            continue
        for place in places:
            others = [
                f"{other.owner} ({files.problem(other.file, other.path, '').file_line})"
                for other in places
                if other.owner != place.owner
            ]
            value = _claimed_text(files, place)
            problems.append(
                files.problem(
                    place.file,
                    place.path,
                    f"{kind} '{value}' is already used by {', '.join(others)}",
                )
            )
    return problems


def _claimed_text(files: KnowledgeFiles, place: _Claim) -> str:
    node = files.documents[place.file].node
    for part in place.path:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            node = node.value[part] if part < len(node.value) else None
        if node is None:
            return "?"
    return str(node.value) if isinstance(node, yaml.ScalarNode) else "?"


def _knowledge_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix in {".yaml", ".yml"})


def knowledge_revision(directory: Path) -> str:
    """The revision the directory would load as, without validating it (cheap to poll)."""
    return _revision(_knowledge_files(directory))


def _revision(paths: Iterable[Path]) -> str:
    """A short content hash: conversations remember which knowledge they started a guide with."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]
