"""How well the gate keeps passwords out and ordinary messages intact, on a labelled corpus.

The corpus (tests/data/redaction_corpus.yaml) holds messages with each password marked ⟦…⟧ and
ordinary helpdesk messages. Recall counts the characters of the passwords that no longer appear
in what would be stored (a piece of four characters in a row left over counts as leaked);
precision counts the flagged messages that really carried a password.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bot.gate import clean
from bot.redaction import REDACTED

__all__ = [
    "CORPUS",
    "Labelled",
    "Miss",
    "Report",
    "evaluate",
    "format_report",
    "leaked_pieces",
    "load_corpus",
    "parse_labelled",
]

CORPUS = Path(__file__).resolve().parents[2] / "tests" / "data" / "redaction_corpus.yaml"
_OPEN, _CLOSE = "⟦", "⟧"
_PIECE = 4  # this many characters of a secret in a row are a leak


@dataclass(frozen=True)
class Labelled:
    text: str  # the message as the user sent it
    secrets: tuple[str, ...]


@dataclass(frozen=True)
class Miss:
    message: str
    stored: str
    leaked: tuple[str, ...]  # pieces of secrets still in `stored`; empty for a false alarm


@dataclass
class Report:
    corpus: Path
    with_password: int = 0
    ordinary: int = 0
    secret_chars: int = 0
    leaked_chars: int = 0
    flagged_with_password: int = 0
    false_alarms: list[Miss] = field(default_factory=list)
    leaks: list[Miss] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return 1 - self.leaked_chars / self.secret_chars if self.secret_chars else 1.0

    @property
    def precision(self) -> float:
        flagged = self.flagged_with_password + len(self.false_alarms)
        return self.flagged_with_password / flagged if flagged else 1.0


def parse_labelled(marked: str) -> Labelled:
    """ "mein Passwort ist ⟦Sommer2024!⟧" -> the message and its secret(s)."""
    secrets = []
    text = marked
    while _OPEN in text:
        begin = text.index(_OPEN)
        end = text.index(_CLOSE, begin)
        secrets.append(text[begin + 1 : end])
        text = text[:begin] + text[begin + 1 : end] + text[end + 1 :]
    if not secrets:
        raise ValueError(f"no ⟦secret⟧ marked in {marked!r}")
    return Labelled(text, tuple(secrets))


def load_corpus(path: Path = CORPUS) -> tuple[list[Labelled], list[str]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [parse_labelled(item) for item in data["passwords"]], list(data["ordinary"])


def leaked_pieces(secret: str, stored: str) -> tuple[set[int], list[str]]:
    """Which characters of `secret` survive in `stored`, as pieces of `_PIECE` in a row."""
    remaining = stored.replace(REDACTED, "\n")
    width = min(_PIECE, len(secret))
    survived: set[int] = set()
    pieces = []
    for start in range(len(secret) - width + 1):
        piece = secret[start : start + width]
        if piece.strip() and piece in remaining:
            survived.update(range(start, start + width))
            pieces.append(piece)
    return survived, pieces


def evaluate(path: Path = CORPUS) -> Report:
    with_password, ordinary = load_corpus(path)
    report = Report(path, with_password=len(with_password), ordinary=len(ordinary))
    for item in with_password:
        cleaned = clean(item.text)
        report.flagged_with_password += cleaned.had_secret
        leaked: list[str] = []
        for secret in item.secrets:
            survived, pieces = leaked_pieces(secret, cleaned.text)
            report.secret_chars += len(secret)
            report.leaked_chars += len(survived)
            leaked.extend(pieces)
        if leaked or not cleaned.had_secret:
            report.leaks.append(Miss(item.text, cleaned.text, tuple(leaked)))
    for text in ordinary:
        cleaned = clean(text)
        if cleaned.had_secret or cleaned.text != text:
            report.false_alarms.append(Miss(text, cleaned.text, ()))
    return report


def format_report(report: Report) -> str:
    lines = [
        f"corpus: {report.corpus}",
        f"messages with a password: {report.with_password}",
        f"ordinary messages: {report.ordinary}",
        f"recall (password characters removed): {report.recall:.3f} "
        f"({report.secret_chars - report.leaked_chars} of {report.secret_chars})",
        f"precision (flagged messages that carried a password): {report.precision:.3f} "
        f"({report.flagged_with_password} of "
        f"{report.flagged_with_password + len(report.false_alarms)})",
        f"false alarms: {len(report.false_alarms)} of {report.ordinary} ordinary messages",
        f"messages with a password left in: {len(report.leaks)} of {report.with_password}",
    ]
    for miss in report.leaks:
        lines.append(f"  leaked {', '.join(miss.leaked) or '(not flagged)'}: {miss.message!r}")
        lines.append(f"    kept: {miss.stored!r}")
    for miss in report.false_alarms:
        lines.append(f"  false alarm: {miss.message!r}")
        lines.append(f"    kept: {miss.stored!r}")
    return "\n".join(lines)
