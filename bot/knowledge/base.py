"""The loaded knowledge base: one immutable object the engine and understanding read from.

What the engine can ask (all data, no fuzzy matching — typo tolerance is the lexicon's job):

- `guides`, `programs`, `guides_of_program`, `program_for(guide_id)`: the published guides,
  as before. `unpublished` holds guides written and checked but not yet offered
  (`published: false`); `every_guide_of_program(id)` lists both, newest data first in file order.
  `guide.localized("en")` is the guide in English; `guide.steps[i].help` and
  `step.help_for(normalized_text)` answer "wo finde ich …" at a step.
- `cards`, `card_for_version(program_id, version)`, `settings_card(id, protocol)`: programs
  without a guide (and newer versions of guided ones) and the settings card to render for them.
- `name_owner(text)`: who claims a name exactly (program, guide, card), after normalisation.
- `devices.match(text)`, `devices.mask(text)`, `devices.is_generic(text)`: device names and
  models -> platform, never an OS version; generic words ("Handy") -> ask for the platform.
- `troubleshooting.match(text, program)`: error messages -> cause, fix, whether to offer the check.
- `faq`: questions and answers, with `server.yaml` values already filled in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

from bot.knowledge import placeholders
from bot.knowledge.models import (
    CardProgram,
    Computer,
    Device,
    DevicesFile,
    Endpoint,
    FaqEntry,
    GenericDevices,
    Guide,
    Helpdesk,
    Localized,
    LoginName,
    MobilePlatform,
    Platform,
    Program,
    ProgramFile,
    Server,
    SetupWay,
    Step,
    TroubleshootingEntry,
)
from bot.knowledge.versions import parse_version
from bot.normalize import normalize

__all__ = [
    "DeviceMatch",
    "Devices",
    "KnowledgeBase",
    "NameKind",
    "NameOwner",
    "SettingsCard",
    "Troubleshooting",
    "any_of",
]

# --- devices -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceMatch:
    device: Device
    start: int  # the span of the device's words in the normalised text
    end: int

    @property
    def platform(self) -> MobilePlatform:
        return self.device.platform


def any_of(patterns: Iterable[str]) -> re.Pattern[str]:
    """One pattern that matches where any of `patterns` does: a single scan rules out the
    common case of no match before each pattern is tried on its own. Never matches when empty."""
    alternatives = [f"(?:{pattern})" for pattern in patterns]
    return re.compile("|".join(alternatives) if alternatives else r"(?!)")


@dataclass(frozen=True)
class Devices:
    """Device names and models; each pattern is matched against the normalised text."""

    entries: tuple[Device, ...] = ()
    generic: GenericDevices | None = None
    # platform -> the program whose guides serve that platform's own mail app
    platform_programs: dict[Platform, str] = field(default_factory=dict)
    computers: tuple[Computer, ...] = ()

    def matches(self, text: str) -> list[DeviceMatch]:
        """Every device named in `text` (raw or normalised), in the order they appear."""
        normalized = normalize(text)
        if not self._any_device.search(normalized):  # most messages name none
            return []
        found: list[DeviceMatch] = []
        for device in self.entries:
            for pattern in device.compiled:
                for hit in pattern.finditer(normalized):
                    found.append(DeviceMatch(device, hit.start(), hit.end()))
        found.sort(key=lambda m: (m.start, -(m.end - m.start)))
        result: list[DeviceMatch] = []
        for match in found:  # the longest match at each place; no overlaps
            if not result or match.start >= result[-1].end:
                result.append(match)
        return result

    @cached_property
    def _any_device(self) -> re.Pattern[str]:
        return any_of(p for device in self.entries for p in device.patterns)

    def match(self, text: str) -> DeviceMatch | None:
        """The first device named in `text`, if any."""
        found = self.matches(text)
        return found[0] if found else None

    def platform_of(self, text: str) -> MobilePlatform | None:
        """The platform when all devices named agree ("iPhone 15" -> ios), else None."""
        platforms = {m.platform for m in self.matches(text)}
        return platforms.pop() if len(platforms) == 1 else None

    def mask(self, text: str) -> str:
        """The normalised text with device names cut out, so "iPhone 15" yields no version 15."""
        normalized = normalize(text)
        for match in reversed(self.matches(normalized)):
            normalized = normalized[: match.start] + " " + normalized[match.end :]
        return " ".join(normalized.split())

    def is_generic(self, text: str) -> bool:
        """A word for a device without its platform ("Handy", "phone"): ask which platform."""
        if self.generic is None:
            return False
        normalized = normalize(text)
        return any(p.search(normalized) for p in self.generic.compiled)

    def computer_of(self, text: str) -> Computer | None:
        """The computer's system named in `text` ("mein Laptop mit Windows"), if any."""
        normalized = normalize(text)
        return next(
            (c for c in self.computers if any(p.search(normalized) for p in c.compiled)), None
        )

    def without_computers(self, normalized: str) -> str:
        """`normalized` without computer systems: "Windows 11" holds no version 11."""
        for computer in self.computers:
            for pattern in computer.compiled:
                normalized = pattern.sub(" ", normalized)
        return " ".join(normalized.split())


# --- troubleshooting ---------------------------------------------------------------------


@dataclass(frozen=True)
class Troubleshooting:
    entries: tuple[TroubleshootingEntry, ...] = ()

    def match(self, text: str, program: str | None = None) -> list[TroubleshootingEntry]:
        """The entries whose patterns match `text`: those of `program` first, then generic
        ones, then those of other programs (the user may have named the wrong program)."""
        normalized = normalize(text)
        if not self._any_error.search(normalized):  # most messages quote no error
            return []
        hits = [e for e in self.entries if any(p.search(normalized) for p in e.compiled)]

        def rank(entry: TroubleshootingEntry) -> int:
            if program is not None and program in entry.programs:
                return 0
            return 1 if not entry.programs else 2

        return sorted(hits, key=rank)

    @cached_property
    def _any_error(self) -> re.Pattern[str]:
        return any_of(p for entry in self.entries for p in entry.patterns)

    def get(self, entry_id: str) -> TroubleshootingEntry | None:
        return next((e for e in self.entries if e.id == entry_id), None)


# --- settings cards ----------------------------------------------------------------------


@dataclass(frozen=True)
class SettingsCard:
    """What a settings card shows; the engine renders it in the user's language.

    `program` is a card program or a guided program (a card can stand in for any program).
    """

    program_id: str
    name: Localized
    # protocol -> its endpoints; the incoming protocol the user chose, or both, then smtp
    endpoints: dict[str, list[Endpoint]]
    server_name: str
    login_name: LoginName
    login_example: str  # "name@uni-beispiel.de" or "name"
    password_unchanged: bool
    setup: list[SetupWay]
    discontinued: bool
    notes: list[Localized]


NameKind = Literal["program", "guide", "card"]


@dataclass(frozen=True)
class NameOwner:
    kind: NameKind
    id: str
    program: str  # the program (or card) id the name leads to


@dataclass(frozen=True)
class KnowledgeBase:
    server: Server
    helpdesk: Helpdesk
    programs: dict[str, Program]
    guides: dict[str, Guide]
    faq: list[FaqEntry]
    revision: str
    # guide id -> program id, and program id -> its guides in file order
    program_of_guide: dict[str, str] = field(default_factory=dict)
    guides_of_program: dict[str, list[Guide]] = field(default_factory=dict)
    cards: dict[str, CardProgram] = field(default_factory=dict)
    devices: Devices = field(default_factory=Devices)
    troubleshooting: Troubleshooting = field(default_factory=Troubleshooting)
    # normalised name -> who claims it (programs, guides, cards; ids, names and aliases)
    names: dict[str, NameOwner] = field(default_factory=dict)
    # guides with `published: false`: checked, shown by `lotse kb show`, not offered to users
    unpublished: dict[str, Guide] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        *,
        server: Server,
        helpdesk: Helpdesk,
        programs: Sequence[ProgramFile],
        faq: Sequence[FaqEntry],
        revision: str,
        cards: Sequence[CardProgram] = (),
        devices: DevicesFile | None = None,
        troubleshooting: Sequence[TroubleshootingEntry] = (),
    ) -> KnowledgeBase:
        known = placeholders.values(server)
        programs = sorted(programs, key=lambda file: (file.program.order, file.program.name))
        programs = [
            file.model_copy(update={"guides": [_filled_guide(g, known) for g in file.guides]})
            for file in programs
        ]
        cards = sorted(cards, key=lambda card: (card.order, card.id))
        return cls(
            server=server,
            helpdesk=helpdesk,
            programs={file.program.id: file.program for file in programs},
            guides={g.id: g for file in programs for g in file.guides if g.published},
            faq=[
                entry.model_copy(
                    update={"answer": placeholders.fill_localized(entry.answer, known)}
                )
                for entry in faq
                if entry.for_login_name in (None, server.login_name)
            ],
            revision=revision,
            program_of_guide={g.id: file.program.id for file in programs for g in file.guides},
            guides_of_program={
                file.program.id: [g for g in file.guides if g.published] for file in programs
            },
            unpublished={g.id: g for file in programs for g in file.guides if not g.published},
            cards={card.id: _filled_card(card, known) for card in cards},
            devices=Devices(
                tuple(devices.devices),
                devices.generic,
                dict(devices.platform_programs),
                tuple(devices.computers),
            )
            if devices
            else Devices(),
            troubleshooting=Troubleshooting(
                tuple(
                    e.model_copy(
                        update={
                            "explanation": placeholders.fill_localized(e.explanation, known),
                            "fix": placeholders.fill_localized(e.fix, known),
                        }
                    )
                    for e in troubleshooting
                )
            ),
            names=_names(programs, cards),
        )

    def program_for(self, guide_id: str) -> Program:
        return self.programs[self.program_of_guide[guide_id]]

    def every_guide_of_program(self, program_id: str) -> list[Guide]:
        """Published and unpublished guides of a program, in file order."""
        every = {**self.guides, **self.unpublished}
        return [
            every[guide_id]
            for guide_id, owner in self.program_of_guide.items()
            if owner == program_id
        ]

    def name_owner(self, text: str) -> NameOwner | None:
        """Who claims exactly this name (after normalisation): "Outlook für Mac" -> the card
        `outlook-mac`, "Office 365" -> the guide `outlook-2019-365`. No fuzzy matching."""
        return self.names.get(normalize(text))

    def card_for_version(self, program_id: str, version: str | None) -> CardProgram | None:
        """The card that answers `version` of a guided program (Android 14 -> Samsung E-Mail's
        card), or None when a guide serves it (then `guide_for_version` picks the guide)."""
        if version is None or not parse_version(version):
            return None
        said = parse_version(version)
        candidates = [
            card
            for card in self.cards.values()
            if card.family == program_id
            and card.from_version is not None
            and said >= parse_version(card.from_version)
        ]
        if not candidates:
            return None
        return max(candidates, key=lambda card: parse_version(card.from_version or "0"))

    def settings_card(self, program_id: str | None, protocol: str | None = None) -> SettingsCard:
        """The settings card for a card program or any guided program (KeyError if unknown;
        None: a program nobody named, "your program"): the server, ports and security of the
        chosen incoming protocol (both when unknown) and SMTP, the login name rule, and that
        the password stays the same."""
        endpoints = self.settings_card_endpoints(protocol)
        card = self.cards.get(program_id) if program_id else None
        setup: list[SetupWay] = []
        notes: list[Localized] = []
        discontinued = False
        if program_id is None:
            name = Localized(de="Ihr Programm", en="your program")
        elif card is None:
            program = self.programs[program_id]
            name = Localized(de=program.name, en=program.name)
            if any(g.offers_profile for g in self.guides_of_program.get(program_id, [])):
                setup = ["apple-profile"]
        else:
            name, setup = card.name, card.setup_ways
            discontinued, notes = card.discontinued, [note.text for note in card.notes]
        return SettingsCard(
            program_id=program_id or "",
            name=name,
            endpoints=endpoints,
            server_name=self.server.name,
            login_name=self.server.login_name,
            login_example=self.login_example,
            password_unchanged=True,
            setup=setup,
            discontinued=discontinued,
            notes=notes,
        )

    def settings_card_endpoints(self, protocol: str | None) -> dict[str, list[Endpoint]]:
        """The chosen incoming protocol's endpoints (IMAP and POP3 when unknown), then SMTP."""
        incoming = [protocol] if protocol in ("imap", "pop3") else ["imap", "pop3"]
        return {
            name: self.server.endpoints_for(name)
            for name in [*incoming, "smtp"]
            if self.server.endpoints_for(name)
        }

    @property
    def login_example(self) -> str:
        """What users type as their login name, by `server.yaml`'s rule."""
        domain = self.server.mail_domains[0] if self.server.mail_domains else None
        if self.server.login_name == "address" and domain:
            return f"name@{domain}"
        return "name"


def _filled_guide(guide: Guide, known: dict[str, str]) -> Guide:
    if not any(step.help for step in guide.steps):
        return guide
    return guide.model_copy(update={"steps": [_filled_step(step, known) for step in guide.steps]})


def _filled_step(step: Step, known: dict[str, str]) -> Step:
    helps = [
        entry.model_copy(update={"text": placeholders.fill_localized(entry.text, known)})
        for entry in step.help
    ]
    return step.model_copy(update={"help": helps})


def _filled_card(card: CardProgram, known: dict[str, str]) -> CardProgram:
    notes = [
        note.model_copy(update={"text": placeholders.fill_localized(note.text, known)})
        for note in card.notes
    ]
    return card.model_copy(update={"notes": notes})


def _names(programs: Sequence[ProgramFile], cards: Sequence[CardProgram]) -> dict[str, NameOwner]:
    names: dict[str, NameOwner] = {}
    for file in programs:
        program = file.program
        for name in (program.id, program.name, *program.aliases):
            names.setdefault(normalize(name), NameOwner("program", program.id, program.id))
        for guide in file.guides:
            for name in (guide.id, *guide.aliases):
                names.setdefault(normalize(name), NameOwner("guide", guide.id, program.id))
    for card in cards:
        for name in (card.id, card.name.de, card.name.en or card.name.de, *card.aliases):
            names.setdefault(normalize(name), NameOwner("card", card.id, card.id))
    return names
