"""Clean incoming text: remove passwords before anything is stored or sent to the NLU server,
and tell apart messages that are too long or unreadable.

Lotse never asks for a password, but users paste them anyway ("mein Passwort ist Sommer2024!").
Two signals catch them: a password word followed by a value, and a lone token that looks like a
password (long, mixing letters with digits or symbols) and is nothing the bot knows.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

MAX_MESSAGE_LENGTH = 4096
REDACTED = "[Passwort entfernt]"

_PASSWORD_WORD = (
    r"(?:passwort|passwd|password|kennwort|pw|pwd|passphrase|pin|zugangscode|app-passwort)"
)
# "Passwort: geheim", "mein Passwort ist geheim", "pw = geheim", "password is hunter2"
_LABELLED = re.compile(
    rf"(?i)\b({_PASSWORD_WORD}\b(?:\s+(?:ist|lautet|is|wäre|war)\s+|\s*[:=]\s*))"
    r"(?!(?:nicht|kein|keine|nie|falsch|vergessen|geändert|ändern|zurücksetzen|not|wrong|"
    r"forgotten|reset|ein|eingeben|eingegeben|eintragen|abgefragt|gefragt|speichern)\b)"
    r"([^\s\"'„“”]+|\"[^\"]+\"|'[^']+'|„[^“”]+[“”])"
)
# A lone token of 8+ characters mixing letters with digits or symbols, e.g. "Xy7!kL9#".
_TOKEN = re.compile(r"(?<![\w@./:-])(?=\S*[A-Za-zÄÖÜäöüß])(?=\S*[\d!#$%&*+?@^~§])\S{8,64}(?![\w@])")
# Things users legitimately type that look like the above.
_HARMLESS = re.compile(
    r"(?i)^(?:[\w.+-]+@[\w-]+(\.[\w-]+)+|https?://\S+|[\w-]+(\.[\w-]+)+|\d+(\.\d+)*|"
    r"(?:outlook|office|thunderbird|ios|android|windows|macos|iphone|ipad|galaxy|win)\S*|"
    r"ssl/tls|imap4?|pop3|smtps?|starttls)$"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")


@dataclass(frozen=True)
class CleanedText:
    text: str  # what may be stored and understood
    had_secret: bool
    too_long: bool
    unreadable: bool


def redact(text: str) -> tuple[str, bool]:
    """Replace password-like parts; return the cleaned text and whether anything was removed."""
    found = False

    def labelled(match: re.Match[str]) -> str:
        nonlocal found
        found = True
        return match.group(1) + REDACTED

    text = _LABELLED.sub(labelled, text)

    def token(match: re.Match[str]) -> str:
        nonlocal found
        value = match.group(0)
        if _HARMLESS.match(value.strip(".,;!?")):
            return value
        found = True
        return REDACTED

    text = _TOKEN.sub(token, text)
    return text, found


def _is_unreadable(text: str) -> bool:
    """Binary junk: mostly control, private-use or replacement characters."""
    if not text.strip():
        return True
    odd = sum(
        1
        for char in text
        if (unicodedata.category(char) in ("Cc", "Co", "Cs", "Cn") and char not in "\n\t\r")
        or char == "\ufffd"
    )
    return odd / len(text) > 0.3


def clean(text: str) -> CleanedText:
    """Everything the conversation service needs to know about a raw message, in one pass."""
    unreadable = _is_unreadable(text)
    # Control characters would break terminals and PostgreSQL (NUL); keep the rest.
    text = _CONTROL.sub("\ufffd", text)
    redacted, had_secret = redact(text)
    return CleanedText(
        text=redacted,
        had_secret=had_secret,
        too_long=len(text) > MAX_MESSAGE_LENGTH,
        unreadable=unreadable and not had_secret,
    )
