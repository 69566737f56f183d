"""The one gate every text a user sends passes before it is stored, understood, relayed, put in a
ticket or mailed: typed messages and command arguments alike (`/mensch …`, `!neu …`).

- Lone UTF-16 surrogates (a Telegram update may carry "\\ud800"), NUL, other control characters
  and noncharacters become U+FFFD; terminal escape sequences (CSI, OSC, C1) and bidirectional
  overrides are removed, so nothing a user wrote can drive an agent's terminal or fool its
  reader. Newlines and tabs stay; "\\r\\n" becomes "\\n".
- Passwords are redacted (bot/redaction.py).
- A message longer than a channel carries is cut to MAX_MESSAGE_LENGTH with a visible marker.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from bot.redaction import redact

__all__ = ["CUT_MARKER", "MAX_MESSAGE_LENGTH", "CleanedText", "clean", "sanitize"]

MAX_MESSAGE_LENGTH = 4096  # Telegram's limit for one message, and so what a relay can carry
CUT_MARKER = " … [gekürzt]"
_MARGIN = 256

_ESCAPE_SEQUENCE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor movement, screen clearing
    r"|\x9b[0-?]*[ -/]*[@-~]"  # the same as one C1 character
    r"|(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"  # OSC: window titles, links
    r"|(?:\x1b[P^_X]|[\x90\x98\x9e\x9f])[^\x1b\x9c]*(?:\x1b\\|\x9c)?"  # DCS, SOS, PM, APC
    r"|\x1b[ -/]*[0-~]?"  # any other escape
)
_BIDI_CONTROL = re.compile(r"[\u202a-\u202e\u2066-\u2069]")
_ODD = re.compile(r"[\ufffd\ue000-\uf8ff\U000f0000-\U0010ffff]")
_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


@dataclass(frozen=True)
class CleanedText:
    text: str  # what may be stored, understood, relayed and mailed
    had_secret: bool  # a password was removed
    too_long: bool  # longer than MAX_MESSAGE_LENGTH (the text is cut)
    unreadable: bool  # binary junk rather than words


def sanitize(text: str) -> str:
    """Text that every store, terminal and mail can carry, with nothing hidden in it."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _ESCAPE_SEQUENCE.sub("", text)
    text = _BIDI_CONTROL.sub("", text)
    text = _UNSAFE.sub("\ufffd", text)
    return unicodedata.normalize("NFC", text)


def _is_unreadable(text: str) -> bool:
    """Binary junk: mostly replaced control characters, broken encoding or private-use
    characters (after `sanitize`, every control character is U+FFFD)."""
    if not text.strip():
        return True
    return len(_ODD.findall(text)) / len(text) > 0.3


def clean(raw: str) -> CleanedText:
    """Everything the service needs to know about a message, and the text it may keep."""
    text = sanitize(raw)
    unreadable = _is_unreadable(text)
    # Only what can be kept is redacted (the rest is cut off anyway), so a huge message costs
    # no more than a long one; the margin keeps a password across the cut whole for redaction.
    redaction = redact(text[: MAX_MESSAGE_LENGTH + _MARGIN])
    kept = redaction.text
    if len(text) > MAX_MESSAGE_LENGTH or len(kept) > MAX_MESSAGE_LENGTH:
        kept = kept[: MAX_MESSAGE_LENGTH - len(CUT_MARKER)].rstrip() + CUT_MARKER
    return CleanedText(
        text=kept,
        had_secret=redaction.found,
        too_long=len(text) > MAX_MESSAGE_LENGTH,
        unreadable=unreadable and not redaction.found,
    )
