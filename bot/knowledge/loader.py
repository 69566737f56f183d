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
from bot.knowledge.models import FaqFile, ProgramFile, ServerFile
from bot.understanding.normalize import normalize

SERVER_FILE = "server.yaml"
FAQ_FILE = "faq.yaml"

ModelT = TypeVar("ModelT", bound=BaseModel)


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

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


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


def load_knowledge(directory: Path) -> KnowledgeBase:
    """Load every file in `directory`; raise `KnowledgeError` listing all problems found."""
    problems: list[Problem] = []
    if not directory.is_dir():
        raise KnowledgeError([Problem(str(directory), None, "", "directory not found")])
    paths = _knowledge_files(directory)
    names = {p.name for p in paths}
    for required in (SERVER_FILE, FAQ_FILE):
        if required not in names:
            problems.append(Problem(str(directory / required), None, "", "file is missing"))

    documents = [doc for doc in (_parse(p, problems) for p in paths) if doc is not None]
    server: ServerFile | None = None
    faq: FaqFile | None = None
    programs: list[tuple[_Document, ProgramFile]] = []
    for doc in documents:
        if doc.path.name == SERVER_FILE:
            server = _validate(doc, ServerFile, problems)
        elif doc.path.name == FAQ_FILE:
            faq = _validate(doc, FaqFile, problems)
        else:
            program = _validate(doc, ProgramFile, problems)
            if program is not None:
                programs.append((doc, program))
    if not programs and not problems:
        problems.append(Problem(str(directory), None, "", "no program files found"))
    problems.extend(_cross_file_problems(programs))
    if problems or server is None or faq is None:
        raise KnowledgeError(problems)
    knowledge = KnowledgeBase.build(
        server=server.server,
        helpdesk=server.helpdesk,
        programs=[program for _, program in programs],
        faq=faq.faq,
        revision=_revision(paths),
    )
    files = {doc.path.name: program for doc, program in programs}
    nodes = {doc.path.name: doc for doc in documents}
    findings = [
        *checks.check_reachability(knowledge, files),
        *checks.check_ports(server.server, files),
        *checks.check_translations(faq.faq, files),
    ]
    if findings:
        raise KnowledgeError(
            [
                Problem(
                    str(nodes[f.file].path),
                    _line_of(nodes[f.file].node, f.path),
                    ".".join(str(part) for part in f.path),
                    f.message,
                )
                for f in findings
            ]
        )
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


def _cross_file_problems(programs: list[tuple[_Document, ProgramFile]]) -> list[Problem]:
    """Ids and aliases must be unique across all program files, or lookups would be ambiguous."""
    problems: list[Problem] = []
    owners: dict[tuple[str, str], str] = {}

    def claim(
        kind: str, value: str, owner: str, doc: _Document, path: tuple[str | int, ...]
    ) -> None:
        # Aliases compare as the lexicon sees them: "Apple Mail!" is "Apple Mail".
        key = (kind, normalize(value) if kind == "alias" else value.casefold())
        if key in owners and owners[key] != owner:
            problems.append(
                Problem(
                    str(doc.path),
                    _line_of(doc.node, path),
                    ".".join(str(p) for p in path),
                    f"{kind} '{value}' is already used by {owners[key]}",
                )
            )
        owners.setdefault(key, owner)

    for doc, file in programs:
        program = file.program
        claim("program id", program.id, f"program {program.id}", doc, ("program", "id"))
        for i, alias in enumerate(program.aliases):
            claim("alias", alias, f"program {program.id}", doc, ("program", "aliases", i))
        for g, guide in enumerate(file.guides):
            claim("guide id", guide.id, f"guide {guide.id}", doc, ("guides", g, "id"))
            for i, alias in enumerate(guide.aliases):
                claim("alias", alias, f"guide {guide.id}", doc, ("guides", g, "aliases", i))
    return problems


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
