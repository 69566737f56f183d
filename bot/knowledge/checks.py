"""Checks beyond the schema: things each file can get right on its own but not together.

- Every alias, version name and covered version reaches its program or guide through the
  lexicon, the way a user's message would.
- Ports named in a step exist in `server.yaml`, and the security a step pairs with a port
  (SSL, SSL/TLS = encrypted from the start; TLS, STARTTLS = upgraded on the standard port,
  as Outlook and the seed use the words) matches the endpoint.
- Every German text has an English one that translates its current wording (`de_hash`).
- Placeholders (`{server}`, `{smtp_starttls_port}` …) are ones `server.yaml` can fill.
- Troubleshooting entries, cards and devices point at programs that exist.
- Every example and sourced wording matches its own patterns, and device names never leave a
  number behind that could be read as a version.

Each finding names the YAML path it is about; the loader turns that into file and line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from pydantic import BaseModel

from bot.knowledge import placeholders
from bot.knowledge.base import Devices, KnowledgeBase
from bot.knowledge.lexicon import ProgramLexicon
from bot.knowledge.models import (
    CardsFile,
    DevicesFile,
    FaqFile,
    Guide,
    ProgramFile,
    Server,
    StepItem,
    TroubleshootingFile,
)
from bot.knowledge.translations import open_translations
from bot.knowledge.versions import guide_for_version
from bot.normalize import normalize

__all__ = [
    "Finding",
    "YamlPath",
    "check_patterns",
    "check_placeholders",
    "check_ports",
    "check_reachability",
    "check_references",
    "check_translations",
]

YamlPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Finding:
    file: str  # the file name within the knowledge directory
    path: YamlPath
    message: str


_PORT_NUMBER = re.compile(r"\b(\d{2,5})\b")
_PORT_WORD = re.compile(r"(?i)\bports?\b")
# In a sentence: STARTTLS before SSL/TLS before SSL, so "SSL/TLS" is not read as "SSL".
_SENTENCE_SECURITY = [
    ("starttls", re.compile(r"\bSTARTTLS\b")),
    ("tls", re.compile(r"\bSSL/TLS\b|\bSSL\b")),
]
_ITEM_SECURITY = {"SSL": "tls", "SSL/TLS": "tls", "TLS": "starttls", "STARTTLS": "starttls"}
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-ZÄÖÜ])")


def check_reachability(
    knowledge: KnowledgeBase, files: dict[str, ProgramFile]
) -> Iterator[Finding]:
    lexicon = ProgramLexicon(knowledge)
    for name, file in files.items():
        program = file.program
        # Said before a version: a name that is no device ("iPhone 12" is no iOS 12).
        said = next((a for a in program.aliases if not knowledge.devices.match(a)), program.id)
        for i, alias in enumerate(program.aliases):
            found = lexicon.find(normalize(alias)).program
            if found != program.id:
                yield Finding(
                    name,
                    ("program", "aliases", i),
                    f"alias '{alias}' leads to {found or 'nothing'}, not to {program.id}",
                )
        for spoken, number in program.version_names.items():
            match = lexicon.find(normalize(f"{said} {spoken}"))
            if match.version != number:
                yield Finding(
                    name,
                    ("program", "version_names", spoken),
                    f"version name '{spoken}' is read as {match.version or 'nothing'}, "
                    f"not {number}",
                )
        for g, guide in enumerate(file.guides):
            if not guide.published:
                yield from _unpublished_reachability(name, g, guide, knowledge)
                continue
            for i, alias in enumerate(guide.aliases):
                found = lexicon.find(normalize(alias)).guide
                if found != guide.id:
                    yield Finding(
                        name,
                        ("guides", g, "aliases", i),
                        f"alias '{alias}' leads to {found or 'no guide'}, not to {guide.id}",
                    )
            for i, version in enumerate(guide.versions):
                found = lexicon.find(normalize(f"{said} {version}")).guide
                if found != guide.id:
                    yield Finding(
                        name,
                        ("guides", g, "versions", i),
                        f"'{said} {version}' leads to {found or 'no guide'}, not to {guide.id}",
                    )


def _unpublished_reachability(
    name: str, g: int, guide: Guide, knowledge: KnowledgeBase
) -> Iterator[Finding]:
    """An unpublished guide is not in the lexicon yet: its versions must still resolve to it
    among all guides of its program, so publishing it makes them reach it."""
    every = knowledge.every_guide_of_program(knowledge.program_of_guide[guide.id])
    for i, version in enumerate(guide.versions):
        choice = guide_for_version(every, version)
        if choice is None or choice.guide.id != guide.id:
            found = choice.guide.id if choice else "no guide"
            yield Finding(name, ("guides", g, "versions", i), f"version {version} leads to {found}")


def check_ports(server: Server, files: dict[str, ProgramFile]) -> Iterator[Finding]:
    security_of: dict[int, str] = {e.port: e.security for e in server.endpoints}
    for name, file in files.items():
        for g, guide in enumerate(file.guides):
            for s, step in enumerate(guide.steps):
                path: YamlPath = ("guides", g, "steps", s)
                yield from _sentence_findings(name, (*path, "text"), step.text, security_of)
                yield from _item_findings(name, path, step.items, security_of)


def _sentence_findings(
    name: str, path: YamlPath, text: str, security_of: dict[int, str]
) -> Iterator[Finding]:
    for sentence in _SENTENCE_END.split(text):
        if not _PORT_WORD.search(sentence):
            continue
        ports = [int(n) for n in _PORT_NUMBER.findall(sentence)]
        for port in ports:
            if port not in security_of:
                yield Finding(name, path, f"port {port} is not an endpoint in server.yaml")
        said = next((sec for sec, pattern in _SENTENCE_SECURITY if pattern.search(sentence)), None)
        for port in ports:
            if said and port in security_of and security_of[port] != said:
                yield Finding(
                    name,
                    path,
                    f"port {port} is paired with {said} here but is {security_of[port]} "
                    "in server.yaml",
                )


def _item_findings(
    name: str, path: YamlPath, items: list[StepItem], security_of: dict[int, str]
) -> Iterator[Finding]:
    for i, item in enumerate(items):
        item_path: YamlPath = (*path, "items", i)
        yield from _sentence_findings(name, (*item_path, "text"), item.text, security_of)
        yield from _item_findings(name, item_path, item.items, security_of)
        # A port table entry: children "Port: 143" and "...: TLS".
        ports = [int(m.group(1)) for c in item.items for m in [_PORT_NUMBER.search(c.text)] if m]
        words = [c.text.rsplit(":", 1)[-1].strip() for c in item.items if ":" in c.text]
        securities = [_ITEM_SECURITY[w] for w in words if w in _ITEM_SECURITY]
        if len(ports) != 1 or len(securities) != 1 or ports[0] not in security_of:
            continue
        if security_of[ports[0]] != securities[0]:
            yield Finding(
                name,
                item_path,
                f"port {ports[0]} is listed as {securities[0]} but is "
                f"{security_of[ports[0]]} in server.yaml",
            )


def check_translations(models: dict[str, BaseModel]) -> Iterator[Finding]:
    for name, model in models.items():
        for translation in open_translations(model):
            path = translation.hash_path if translation.stale else translation.path
            yield Finding(name, path, translation.message())


def check_placeholders(server: Server, models: dict[str, BaseModel]) -> Iterator[Finding]:
    known = placeholders.values(server)
    for name, model in models.items():
        if not isinstance(model, FaqFile | CardsFile | TroubleshootingFile | ProgramFile):
            continue
        for path, placeholder in placeholders.unknown(model, known):
            yield Finding(
                name,
                path,
                f"placeholder {{{placeholder}}} cannot be filled from server.yaml; "
                f"known: {', '.join('{' + k + '}' for k in sorted(known))}",
            )


def check_references(knowledge: KnowledgeBase, models: dict[str, BaseModel]) -> Iterator[Finding]:
    clients = set(knowledge.programs) | set(knowledge.cards)
    for name, model in models.items():
        if isinstance(model, TroubleshootingFile):
            for t, entry in enumerate(model.troubleshooting):
                for i, program in enumerate(entry.programs):
                    if program not in clients:
                        yield Finding(
                            name,
                            ("troubleshooting", t, "programs", i),
                            f"unknown program '{program}' (known: {', '.join(sorted(clients))})",
                        )
        elif isinstance(model, CardsFile):
            for c, card in enumerate(model.cards):
                if card.family is not None and card.family not in knowledge.programs:
                    yield Finding(
                        name,
                        ("cards", c, "family"),
                        f"family '{card.family}' is not a program with guides",
                    )
                if (card.family is None) != (card.from_version is None):
                    yield Finding(
                        name,
                        ("cards", c),
                        "family and from_version go together: the card answers the program's "
                        "versions from from_version on",
                    )
                if card.family is None and not card.aliases:
                    yield Finding(name, ("cards", c, "aliases"), "a card needs at least one alias")
        elif isinstance(model, DevicesFile):
            for platform, program in model.platform_programs.items():
                if program not in knowledge.programs:
                    yield Finding(
                        name,
                        ("platform_programs", platform),
                        f"'{program}' is not a program with guides",
                    )
            for c, computer in enumerate(model.computers):
                for p, program in enumerate(computer.programs):
                    if program not in knowledge.programs and program not in knowledge.cards:
                        yield Finding(
                            name,
                            ("computers", c, "programs", p),
                            f"'{program}' is neither a program nor a card",
                        )


def check_patterns(models: dict[str, BaseModel]) -> Iterator[Finding]:
    for name, model in models.items():
        if isinstance(model, DevicesFile):
            devices = Devices(tuple(model.devices), model.generic)
            for d, device in enumerate(model.devices):
                for e, example in enumerate(device.examples):
                    path = ("devices", d, "examples", e)
                    found = devices.match(example)
                    if found is None or found.device.id != device.id:
                        yield Finding(
                            name,
                            path,
                            f"'{example}' is matched by "
                            f"{found.device.id if found else 'no pattern'}, not by {device.id}",
                        )
                    elif any(ch.isdigit() for ch in devices.mask(example)):
                        yield Finding(
                            name,
                            path,
                            f"'{example}' leaves '{devices.mask(example)}' behind: a model "
                            "number would be read as a version; widen the pattern",
                        )
            computers = Devices(computers=tuple(model.computers))
            for c, computer in enumerate(model.computers):
                for e, example in enumerate(computer.examples):
                    path = ("computers", c, "examples", e)
                    found_on = computers.computer_of(example)
                    left = computers.without_computers(normalize(example))
                    if found_on is None or found_on.id != computer.id:
                        yield Finding(
                            name,
                            path,
                            f"'{example}' is matched by "
                            f"{found_on.id if found_on else 'no pattern'}, not by {computer.id}",
                        )
                    elif any(ch.isdigit() for ch in left):
                        yield Finding(
                            name,
                            path,
                            f"'{example}' leaves '{left}' behind: a system's version would be "
                            "read as the program's; widen the pattern",
                        )
            for e, example in enumerate(model.generic.examples):
                if not devices.is_generic(example) or devices.match(example):
                    yield Finding(
                        name,
                        ("generic", "examples", e),
                        f"'{example}' should match a generic pattern and no device",
                    )
        elif isinstance(model, TroubleshootingFile):
            for t, entry in enumerate(model.troubleshooting):
                said = [("wordings", i, w.text) for i, w in enumerate(entry.wordings)]
                said += [("examples", i, text) for i, text in enumerate(entry.examples)]
                if not said:
                    yield Finding(
                        name,
                        ("troubleshooting", t),
                        "give at least one sourced wording or user example",
                    )
                for field, i, text in said:
                    if not any(p.search(normalize(text)) for p in entry.compiled):
                        yield Finding(
                            name,
                            ("troubleshooting", t, field, i),
                            f"none of the patterns of {entry.id} matches this text "
                            f"(normalised: '{normalize(text)[:80]}')",
                        )
