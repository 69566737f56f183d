"""The conversation corpus: conversations written as users talk, run through the service.

Each file in `tests/conversations/` holds conversations of one kind (`question_dead_end`,
`devices`, ...). Every turn is a line the user types and, optionally, what must (`expect`,
`expect_any`) and must not (`reject`) appear in the bot's answer to it: the replies' text and
the labels of the options offered. Matching ignores case; an entry starting with `re:` is a
regular expression. A conversation ends helpfully when every turn holds and no turn failed
inside the bot (an error logged while it ran). `lotse eval conversations` prints the share per
kind and, for each miss, the first turn that went wrong.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from bot.engine.decision import Reply

__all__ = [
    "Conversation",
    "CorpusError",
    "CorpusReport",
    "Handle",
    "Miss",
    "Turn",
    "answer_text",
    "appears",
    "load_corpus",
    "problems",
    "run_corpus",
]


class CorpusError(Exception):
    """A corpus file is not in the expected shape; the message names the file and the place."""


@dataclass(frozen=True)
class Turn:
    user: str
    expect: tuple[str, ...] = ()  # every one must appear
    expect_any: tuple[str, ...] = ()  # at least one must appear
    reject: tuple[str, ...] = ()  # none may appear


@dataclass(frozen=True)
class Conversation:
    id: str
    kind: str
    about: str
    turns: tuple[Turn, ...]
    locale: str | None = None  # the language the user's channel reports

    @property
    def english(self) -> bool:
        """An English speaker's conversation: the kind `english`, or `-en-` in the id (the
        corpus README's convention for English conversations in the other kinds)."""
        return self.kind == "english" or "-en-" in self.id


@dataclass(frozen=True)
class Miss:
    """The first turn of a conversation that did not hold."""

    conversation: Conversation
    turn: int  # 1-based
    problems: tuple[str, ...]
    answer: str


@dataclass(frozen=True)
class CorpusReport:
    conversations: tuple[Conversation, ...]
    misses: tuple[Miss, ...]

    @property
    def helpful(self) -> int:
        return len(self.conversations) - len(self.misses)

    def share(self, kind: str | None = None) -> float:
        """The share of conversations (of one kind) that ended helpfully, 0..1."""
        total = [c for c in self.conversations if kind is None or c.kind == kind]
        missed = [m for m in self.misses if kind is None or m.conversation.kind == kind]
        return 1.0 if not total else (len(total) - len(missed)) / len(total)

    @property
    def kinds(self) -> list[str]:
        return sorted({conversation.kind for conversation in self.conversations})

    def format(self, *, answer_chars: int = 240) -> str:
        total = Counter(c.kind for c in self.conversations)
        missed = Counter(m.conversation.kind for m in self.misses)
        lines = [
            f"{self.helpful}/{len(self.conversations)} conversations ended helpfully "
            f"({self.share():.1%})",
            "",
            f"{'kind':<22} {'helpful':>9} {'share':>7}",
        ]
        for kind in self.kinds:
            helpful = total[kind] - missed[kind]
            lines.append(f"{kind:<22} {f'{helpful}/{total[kind]}':>9} {self.share(kind):>7.1%}")
        lines.append("")
        for language, english in (("German", False), ("English", True)):
            had = sum(1 for c in self.conversations if c.english == english)
            lost = sum(1 for m in self.misses if m.conversation.english == english)
            share = 1.0 if not had else (had - lost) / had
            lines.append(f"{language:<22} {f'{had - lost}/{had}':>9} {share:>7.1%}")
        if self.misses:
            lines += ["", "Misses (the first turn that went wrong):"]
        for miss in self.misses:
            conversation = miss.conversation
            said = conversation.turns[miss.turn - 1].user
            answer = " ".join(miss.answer.split())
            if len(answer) > answer_chars:
                answer = answer[: answer_chars - 1] + "…"
            lines += [
                f"- {conversation.kind}/{conversation.id}, turn {miss.turn} {said!r}: "
                + "; ".join(miss.problems),
                f"    bot: {answer}",
            ]
        return "\n".join(lines)


def load_corpus(directory: Path) -> list[Conversation]:
    """Every conversation in the directory's YAML files, in file order; ids are unique."""
    conversations: list[Conversation] = []
    seen: dict[str, Path] = {}
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise CorpusError(f"{directory}: no conversation files (*.yaml)")
    for path in files:
        for conversation in _load_file(path):
            if conversation.id in seen:
                raise CorpusError(
                    f"{path}: {conversation.id}: id already used in {seen[conversation.id]}"
                )
            seen[conversation.id] = path
            conversations.append(conversation)
    return conversations


def _load_file(path: Path) -> list[Conversation]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise CorpusError(f"{path}: not valid YAML: {error}") from error
    if not isinstance(raw, dict) or not isinstance(raw.get("kind"), str):
        raise CorpusError(f"{path}: expected a mapping with `kind` and `conversations`")
    items = raw.get("conversations")
    if not isinstance(items, list) or not items:
        raise CorpusError(f"{path}: `conversations` must be a non-empty list")
    kind = raw["kind"]
    return [
        _conversation(item, kind, f"{path}: conversation {n}") for n, item in enumerate(items, 1)
    ]


def _conversation(raw: object, kind: str, where: str) -> Conversation:
    if not isinstance(raw, dict):
        raise CorpusError(f"{where}: expected a mapping")
    ident = raw.get("id")
    if not isinstance(ident, str) or not ident:
        raise CorpusError(f"{where}: `id` is missing")
    where = f"{where} ({ident})"
    turns = raw.get("turns")
    if not isinstance(turns, list) or not turns:
        raise CorpusError(f"{where}: `turns` must be a non-empty list")
    locale = raw.get("locale")
    if locale is not None and not isinstance(locale, str):
        raise CorpusError(f"{where}: `locale` must be a language code such as en")
    unknown = set(raw) - {"id", "about", "turns", "locale"}
    if unknown:
        raise CorpusError(f"{where}: unknown keys {sorted(unknown)}")
    return Conversation(
        id=ident,
        kind=kind,
        about=str(raw.get("about", "")),
        turns=tuple(_turn(turn, f"{where}, turn {n}") for n, turn in enumerate(turns, 1)),
        locale=locale,
    )


def _turn(raw: object, where: str) -> Turn:
    if not isinstance(raw, dict) or not isinstance(raw.get("user"), str):
        raise CorpusError(f"{where}: expected a mapping with `user: <what the user types>`")
    unknown = set(raw) - {"user", "expect", "expect_any", "reject"}
    if unknown:
        raise CorpusError(f"{where}: unknown keys {sorted(unknown)}")
    lists: dict[str, tuple[str, ...]] = {}
    for key in ("expect", "expect_any", "reject"):
        value = raw.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise CorpusError(f"{where}: `{key}` must be a list of texts")
        for entry in value:
            if entry.startswith("re:"):
                try:
                    re.compile(entry[3:])
                except re.error as error:
                    raise CorpusError(f"{where}: `{key}`: bad pattern {entry!r}: {error}") from None
        lists[key] = tuple(value)
    return Turn(raw["user"], lists["expect"], lists["expect_any"], lists["reject"])


def appears(entry: str, answer: str) -> bool:
    if entry.startswith("re:"):
        return re.search(entry[3:], answer, re.IGNORECASE) is not None
    return entry.casefold() in answer.casefold()


def answer_text(replies: Sequence[Reply]) -> str:
    """What the user sees of a turn: every reply's text and the labels of its options."""
    parts: list[str] = []
    for reply in replies:
        parts.append(reply.text)
        parts.extend(option.label for option in reply.options)
    return "\n".join(parts)


def problems(turn: Turn, answer: str) -> list[str]:
    found = [f"missing {entry!r}" for entry in turn.expect if not appears(entry, answer)]
    if turn.expect_any and not any(appears(entry, answer) for entry in turn.expect_any):
        found.append("none of " + ", ".join(repr(entry) for entry in turn.expect_any))
    found += [f"unwanted {entry!r}" for entry in turn.reject if appears(entry, answer)]
    return found


Handle = Callable[[str, str, str | None], Awaitable[list[Reply]]]


async def run_corpus(conversations: Sequence[Conversation], handle: Handle) -> CorpusReport:
    """Talk each conversation through `handle(user, line, locale)`, one user per conversation."""
    misses: list[Miss] = []
    for conversation in conversations:
        miss = await _run(conversation, handle)
        if miss is not None:
            misses.append(miss)
    return CorpusReport(tuple(conversations), tuple(misses))


async def _run(conversation: Conversation, handle: Handle) -> Miss | None:
    for number, turn in enumerate(conversation.turns, 1):
        with _errors_logged() as errors:
            replies = await handle(conversation.id, turn.user, conversation.locale)
        answer = answer_text(replies)
        found = problems(turn, answer)
        if errors:
            found.append("the bot failed: " + "; ".join(errors))
        if found:
            return Miss(conversation, number, tuple(found), answer)
    return None


class _ErrorRecorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.name}: {record.getMessage()}")


@contextmanager
def _errors_logged() -> Iterator[list[str]]:
    """Errors the bot logs during a turn (a turn that failed inside still answers politely)."""
    recorder = _ErrorRecorder()
    logger = logging.getLogger("bot")
    logger.addHandler(recorder)
    try:
        yield recorder.messages
    finally:
        logger.removeHandler(recorder)
