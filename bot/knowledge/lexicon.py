"""Program, version and guide names in a user's text, from the knowledge base alone.

Program names and aliases are matched exactly first and then fuzzily (typos such as "outlok" or
"thunderbrid"); versions are normalised to guides through `bot.knowledge.versions`. Both
understanding back ends use it, and the loader checks with it that every alias reaches its
program (`checks.check_reachability`), which is why it lives with the knowledge.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA

from bot.knowledge.base import KnowledgeBase
from bot.knowledge.models import Guide, Platform
from bot.knowledge.versions import covers, guide_for_version
from bot.normalize import normalize

__all__ = ["ProgramLexicon", "ProgramMatch"]

# Aliases shorter than this are matched exactly only: "mac" must not match "mach".
_FUZZY_MIN_LENGTH = 5
_FUZZY_CARD_MIN_LENGTH = 7
_FUZZY_ALIAS_SCORE = 85.0

# No name starts with these; an n-gram that does is a noun phrase, not a mistyped name.
_ARTICLES = frozenset({"a", "an", "the", "my", "ein", "eine", "einen", "mein", "meine", "meinem"})
_NUMBER = re.compile(r"\b\d{1,4}(?:\.\d{1,3}){0,3}\b")
_JOINED = re.compile(r"\b([a-z]{3,})([0-9]{1,4})\b")
_PORT_CONTEXT = re.compile(r"\bports? ([0-9]{1,5})\b")


@dataclass(frozen=True)
class _Target:
    program: str  # a program id, or a card id when `card`
    guide: str | None = None
    version: str | None = None  # set for version names ("el capitan" -> "10.11")
    card: bool = False  # a program without a guide (knowledge/cards.yaml)


@dataclass(frozen=True)
class ProgramMatch:
    program: str | None  # a program id or a card id (programs without a guide)
    guide: str | None
    version: str | None
    score: float  # 100 for exact matches, the fuzzy score otherwise
    # A device without its platform ("Handy") and no program: the engine asks which platform.
    generic_device: bool = False
    # A computer's system ("Windows-Laptop") and no program: the engine asks which program.
    computer: str | None = None


class ProgramLexicon:
    """Finds program, version and guide in a message, using only the knowledge base."""

    def __init__(self, knowledge: KnowledgeBase) -> None:
        self.knowledge = knowledge
        self._phrases: dict[str, _Target] = {}
        for program in knowledge.programs.values():
            for alias in (program.id, program.name, *program.aliases):
                self._phrases.setdefault(normalize(alias), _Target(program.id))
            for name, version in program.version_names.items():
                self._phrases.setdefault(normalize(name), _Target(program.id, version=version))
            for guide in knowledge.guides_of_program[program.id]:
                for alias in guide.aliases:
                    # "El Capitan" is a guide alias and a version name: keep both meanings.
                    known = self._phrases.get(normalize(alias))
                    named = known.version if known and known.program == program.id else None
                    named = named or _number_in_alias(normalize(alias), guide)
                    self._phrases[normalize(alias)] = _Target(program.id, guide.id, named)
        for card in knowledge.cards.values():
            if card.from_version is not None:
                continue  # "Samsung E-Mail (Android 7 und neuer)": reached by version
            for alias in (card.id, card.name.de, card.name.en or card.name.de, *card.aliases):
                # A card's name is longer than the program it extends ("Outlook für Mac"),
                # so it wins by length; a name a program claims stays the program's.
                self._phrases.setdefault(normalize(alias), _Target(card.id, card=True))
        for word, program_id in _distinctive_words(knowledge).items():
            self._phrases.setdefault(word, _Target(program_id))
        # Longest phrases first, so "high sierra" wins over "sierra".
        self._ordered = sorted(self._phrases, key=lambda p: (-len(p.split()), -len(p)))
        # A phrase can only be in a message that has its first word: each turn tries those.
        self._rank = {phrase: rank for rank, phrase in enumerate(self._ordered)}
        self._by_first_word: dict[str, list[str]] = {}
        for phrase in self._ordered:
            for first in phrase.split()[:1]:
                self._by_first_word.setdefault(first, []).append(phrase)
        # Fuzzy candidates by number of words: an n-gram is compared with same-length phrases.
        self._fuzzy: dict[int, list[str]] = {}
        for phrase in self._ordered:
            # Short card names stay exact: "mail" is no typo of "gmail", nor "park" of "spark".
            shortest = _FUZZY_CARD_MIN_LENGTH if self._phrases[phrase].card else _FUZZY_MIN_LENGTH
            if len(phrase) >= shortest:
                self._fuzzy.setdefault(len(phrase.split()), []).append(phrase)
        self._ports = {str(e.port) for e in knowledge.server.endpoints}

    def find(self, normalized: str) -> ProgramMatch:
        """Program (or card), version and guide. Device names lead to their platform's program
        but never to a version ("iPhone 15" is not iOS 15); an app named beside a device wins
        ("Outlook-App auf dem Galaxy")."""
        devices = self.knowledge.devices
        platform = devices.platform_of(normalized)
        generic = devices.is_generic(normalized)
        masked = self._split_joined(devices.mask(normalized))
        # With a device named, only exact names beat it: "iPhone Mail" is no typo of "Gmail".
        target, score, rest, named = self._find_target(masked, fuzzy=platform is None)
        if target is None and platform in devices.platform_programs:
            target, score = _Target(devices.platform_programs[platform]), 100.0
        # "Outlook unter Windows 10" names no Outlook 10.
        version = self._find_version(devices.without_computers(rest), target)
        if target is None:
            computer = devices.computer_of(normalized) if platform is None else None
            return ProgramMatch(
                None,
                None,
                version,
                0.0,
                generic_device=generic,
                computer=computer.id if computer else None,
            )
        if target.card:
            return ProgramMatch(target.program, None, version, score)
        platforms = {p for p, program in devices.platform_programs.items() if program in named}
        platforms |= {platform} if platform else set()
        app = self._app_on(target.program, platforms)
        if app is not None:  # "Outlook auf dem Galaxy/MacBook": that platform's Outlook
            return ProgramMatch(app, None, version, score)
        card = self.knowledge.card_for_version(target.program, version)
        if card is not None:  # "iOS 18", "Android 14": newer than the guides
            return ProgramMatch(card.id, None, version, score)
        guide = target.guide
        if guide is None and version is not None:
            choice = guide_for_version(self.knowledge.guides_of_program[target.program], version)
            guide = choice.guide.id if choice else None
        if guide is None and len(self.knowledge.guides_of_program[target.program]) == 1:
            guide = self.knowledge.guides_of_program[target.program][0].id
        return ProgramMatch(target.program, guide, version, score)

    def _app_on(self, program_id: str, platforms: set[Platform]) -> str | None:
        """The card of `program_id`'s app for the one platform named, if there is one
        ("Thunderbird" on Android -> thunderbird-android, "Outlook" on the Mac -> outlook-mac)."""
        if len(platforms) != 1 or program_id in self.knowledge.devices.platform_programs.values():
            return None
        for card in self.knowledge.cards.values():
            names = (card.name.de, *card.aliases)
            if (
                card.from_version is None
                and platforms <= set(card.platforms)
                and any(program_id in normalize(name).split() for name in names)
            ):
                return card.id
        return None

    def _split_joined(self, text: str) -> str:
        """ "outlook16" -> "outlook 16": a known name written together with its version."""
        if not _JOINED.search(text):
            return text
        return _JOINED.sub(
            lambda m: f"{m.group(1)} {m.group(2)}" if m.group(1) in self._phrases else m.group(0),
            text,
        )

    def ports(self, normalized: str) -> list[str]:
        said = {m.group(1) for m in _PORT_CONTEXT.finditer(normalized)}
        said |= {n for n in _NUMBER.findall(normalized) if n in self._ports}
        return sorted(said, key=int)

    def _find_target(
        self, text: str, *, fuzzy: bool = True
    ) -> tuple[_Target | None, float, str, set[str]]:
        """The most specific program (or card) named, its score, the text without the names,
        and every program named."""
        padded = f" {text} "
        found: list[tuple[_Target, float]] = []
        named = {p for word in set(text.split()) for p in self._by_first_word.get(word, ())}
        for phrase in sorted(named, key=self._rank.__getitem__):
            if f" {phrase} " in padded:
                found.append((self._phrases[phrase], 100.0))
                padded = padded.replace(f" {phrase} ", " | ")
        if not found and fuzzy:
            slip = self._find_fuzzy(padded.split())
            if slip:
                found.append(slip)
        if not found:
            return None, 0.0, text, set()
        # A card ("Spark Mail auf dem Mac"), a guide alias ("office 365") or a version name
        # beats a bare program name, and an app beats its platform ("Thunderbird auf Android").
        mobile = set(self.knowledge.devices.platform_programs.values())
        found.sort(
            key=lambda item: (
                not item[0].card,
                item[0].guide is None,
                item[0].version is None,
                item[0].program in mobile,
            )
        )
        target, score = found[0]
        programs = {t.program for t, _ in found}
        if len(programs) > 1:
            # "iPhone und Mac": keep the most specific; the engine asks when unsure.
            target = next(t for t, _ in found if t.program == target.program)
        if target.guide is None and target.version is None:
            # A version name elsewhere in the text ("Mac ... El Capitan") refines the program.
            refined = [t for t, _ in found if t.program == target.program and t.version]
            if refined:
                target = refined[0]
        return target, score, padded.strip(), programs

    def _find_fuzzy(self, tokens: list[str]) -> tuple[_Target, float] | None:
        best: tuple[_Target, float] | None = None
        for size in (3, 2, 1):
            for start in range(len(tokens) - size + 1):
                ngram = " ".join(tokens[start : start + size])
                if len(ngram) < _FUZZY_MIN_LENGTH - 1 or "|" in ngram:
                    continue
                if tokens[start] in _ARTICLES:  # "a mail" is no typo of "Mac Mail"
                    continue
                candidates = self._fuzzy.get(size, [])
                hit = process.extractOne(
                    ngram, candidates, scorer=fuzz.ratio, score_cutoff=_FUZZY_ALIAS_SCORE
                )
                if hit is None and len(ngram) >= _FUZZY_MIN_LENGTH + 1:
                    # One slip, swapped letters included ("iphnoe"), in a longer name: the
                    # ratio counts a swap as two edits and misses it in six-letter names.
                    slip = process.extractOne(
                        ngram, candidates, scorer=OSA.distance, score_cutoff=1
                    )
                    hit = (slip[0], _FUZZY_ALIAS_SCORE, slip[2]) if slip else None
                if hit and (best is None or hit[1] > best[1]):
                    best = (self._phrases[hit[0]], float(hit[1]))
        return best

    def _find_version(self, text: str, target: _Target | None) -> str | None:
        if target is not None and target.version is not None:
            return target.version
        port_words = {m.group(1) for m in _PORT_CONTEXT.finditer(text)}
        for number in _NUMBER.findall(text):
            if number in port_words:
                continue
            if number in self._ports and (
                target is None or not self._is_version_of(number, target)
            ):
                continue
            return str(number)
        return None

    def _is_version_of(self, number: str, target: _Target) -> bool:
        guides = self.knowledge.guides_of_program.get(target.program, [])
        return any(number in guide.versions for guide in guides)


def _distinctive_words(knowledge: KnowledgeBase) -> dict[str, str]:
    """Words of a program's name that belong to no other program ("microsoft" -> outlook,
    "mozilla" -> thunderbird), so "das Mailprogramm von Microsoft" names the program. Words
    shared by several programs ("apple") name none."""
    owners: dict[str, set[str]] = {}
    for program in knowledge.programs.values():
        for name in (program.name, *program.aliases):
            for word in normalize(name).split():
                owners.setdefault(word, set()).add(program.id)
    return {
        word: next(iter(programs))
        for word, programs in owners.items()
        if len(programs) == 1
        and len(word) >= _FUZZY_MIN_LENGTH
        and word.isalpha()
        and not knowledge.devices.is_generic(word)  # "Handy" names no platform
    }


def _number_in_alias(alias: str, guide: Guide) -> str | None:
    """The version number a guide alias names: "outlook 2013" -> "2013", "office 365" -> "365"."""
    return next((str(n) for n in _NUMBER.findall(alias) if covers(guide, n)), None)
