"""Logging set-up for the long-running commands: plain text lines or one JSON object per line.

JSON lines (`LOTSE_LOG_FORMAT=json`) are what log collectors (Loki, Elasticsearch, journald's
JSON export) read without parsing rules. Either way, nothing at INFO carries what users wrote
or who they are: the code logs events and counts there, ids and texts at most at DEBUG.

Configured secrets (tokens, passwords) never reach the log: `MaskSecrets` replaces them with
*** in every record, tracebacks included, since libraries quote them in their error messages
(python-telegram-bot's InvalidToken names the token).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO

__all__ = [
    "CHATTY_LIBRARIES",
    "MASK",
    "TEXT_FORMAT",
    "JsonLines",
    "MaskSecrets",
    "configure_logging",
]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Libraries that say too much at INFO (every HTTP request, every sync) for an operator's log.
CHATTY_LIBRARIES = ("httpx", "httpcore", "aiohttp.access", "telegram.ext", "nio", "tornado")

# Attributes every LogRecord has; anything else on a record came in through `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


MASK = "***"


class MaskSecrets(logging.Filter):
    """Replace each of `secrets` with *** in a record's message, extras and traceback.

    A handler's filter, so it sees the records of every logger that reach the handler. It
    formats the message and traceback itself (then leaves no arguments to format again)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Longest first: a token is replaced whole before any secret that is part of it.
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def mask(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        record.msg, record.args = self.mask(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self.mask(record.stack_info)
        for key, value in vars(record).items():
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, self.mask(value))
        return True


class JsonLines(logging.Formatter):
    """One JSON object per record: time, level, logger, message, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value if isinstance(value, str | int | float | bool) else repr(value)
        if record.exc_text:  # the traceback as `MaskSecrets` left it (secrets masked)
            entry["exception"] = record.exc_text
        elif record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(
    log_format: str = "text",
    level: str = "INFO",
    stream: TextIO | None = None,
    secrets: Iterable[str] = (),
) -> None:
    """Send every logger's records to `stream` (stderr) in the chosen format, replacing any
    handlers set up before (the CLI's default), with `secrets` masked (`Settings.secret_values`)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonLines() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(MaskSecrets(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    if level != "DEBUG":
        for name in CHATTY_LIBRARIES:
            logging.getLogger(name).setLevel(logging.WARNING)
