"""Checks beyond the schema: things each file can get right on its own but not together.

- Every alias, version name and covered version reaches its program or guide through the
  lexicon, the way a user's message would.
- Ports named in a step exist in `server.yaml`, and the security a step pairs with a port
  (SSL, SSL/TLS = encrypted from the start; TLS, STARTTLS = upgraded on the standard port,
  as Outlook and the seed use the words) matches the endpoint.
- Where a FAQ entry or hint is translated, question and answer both are.

Each finding names the YAML path it is about; the loader turns that into file and line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from bot.knowledge.base import KnowledgeBase
from bot.knowledge.models import FaqEntry, ProgramFile, Server, StepItem

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
    # Imported here: the lexicon depends on the knowledge package, not the other way round.
    from bot.understanding.lexicon import ProgramLexicon
    from bot.understanding.normalize import normalize

    lexicon = ProgramLexicon(knowledge)
    for name, file in files.items():
        program = file.program
        for i, alias in enumerate(program.aliases):
            found = lexicon.find(normalize(alias)).program
            if found != program.id:
                yield Finding(
                    name,
                    ("program", "aliases", i),
                    f"alias '{alias}' leads to {found or 'nothing'}, not to {program.id}",
                )
        for spoken, number in program.version_names.items():
            match = lexicon.find(normalize(f"{program.aliases[0]} {spoken}"))
            if match.version != number:
                yield Finding(
                    name,
                    ("program", "version_names", spoken),
                    f"version name '{spoken}' is read as {match.version or 'nothing'}, "
                    f"not {number}",
                )
        for g, guide in enumerate(file.guides):
            for i, alias in enumerate(guide.aliases):
                found = lexicon.find(normalize(alias)).guide
                if found != guide.id:
                    yield Finding(
                        name,
                        ("guides", g, "aliases", i),
                        f"alias '{alias}' leads to {found or 'no guide'}, not to {guide.id}",
                    )
            for i, version in enumerate(guide.versions):
                found = lexicon.find(normalize(f"{program.aliases[0]} {version}")).guide
                if found != guide.id:
                    yield Finding(
                        name,
                        ("guides", g, "versions", i),
                        f"'{program.aliases[0]} {version}' leads to {found or 'no guide'}, "
                        f"not to {guide.id}",
                    )


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


def check_translations(faq: list[FaqEntry], files: dict[str, ProgramFile]) -> Iterator[Finding]:
    for i, entry in enumerate(faq):
        if (entry.question.en is None) != (entry.answer.en is None):
            yield Finding(
                "faq.yaml",
                ("faq", i),
                f"FAQ '{entry.id}': translate both question and answer into English, or neither",
            )
    translated = [f for f in files.values() if f.program.version_hint.en]
    if translated:
        for name, file in files.items():
            if file.program.version_hint.en is None:
                yield Finding(
                    name,
                    ("program", "version_hint"),
                    "version_hint has no English text while other programs have one",
                )
