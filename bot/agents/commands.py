"""What agents type and tap in the agents' chat, parsed. Pure functions, no I/O.

Typed commands start with "/" (Telegram, and Matrix clients that pass it through) or "!"
(Element catches unknown "/commands"); Telegram may append the bot's name ("/nehmen@LotseBot").
Umlauts may be typed or spelt out ("/schließen" is "/schliessen"). The ticket number may be
written "12" or "#12"; where it is missing, the message the agent replied to gives it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.normalize import normalize
from bot.numbers import DIGITS, MAX_DIGITS, ascii_number

__all__ = [
    "ANSWER",
    "CLOSE",
    "GUIDE",
    "HELP",
    "KNOWN",
    "LIST",
    "NUMBERED",
    "PAYLOAD_PREFIX",
    "PREFIXES",
    "TAKE",
    "TAPS",
    "DeskCommand",
    "Tap",
    "parse_command",
    "parse_tap",
    "tap_payload",
]

PREFIXES = ("/", "!")
# Commands and the argument each takes after the ticket number.
ANSWER = "antwort"  # the text for the user
GUIDE = "anleitung"  # a guide id (optional: without it the user continues where they were)
CLOSE = "schliessen"
TAKE = "nehmen"
LIST = "tickets"
HELP = "hilfe"
NUMBERED = (ANSWER, GUIDE, CLOSE, TAKE)
KNOWN = (*NUMBERED, LIST, HELP)

# Button payloads ("desk:take:12"): well under Telegram's 64 bytes of callback data.
PAYLOAD_PREFIX = "desk"
TAP_TAKE, TAP_BACK, TAP_CLOSE = "take", "back", "close"
TAPS = (TAP_TAKE, TAP_BACK, TAP_CLOSE)

_NUMBER = re.compile(rf"#?({DIGITS}{{1,{MAX_DIGITS}}})(?=\s|$)")


@dataclass(frozen=True)
class DeskCommand:
    """A typed command. `name` is one of KNOWN, or what was typed for an unknown one."""

    name: str
    number: int | None = None
    rest: str = ""  # what follows the number (the answer text, the guide id), outer space cut

    @property
    def known(self) -> bool:
        return self.name in KNOWN


@dataclass(frozen=True)
class Tap:
    """A button on a ticket card."""

    action: str  # one of TAPS
    number: int


def parse_command(text: str) -> DeskCommand | None:
    """ "/antwort 12 Guten Tag" -> DeskCommand; None when the text is no command at all.

    The answer text keeps its line breaks and inner spacing: it is relayed to the user exactly.
    """
    stripped = text.strip()
    if len(stripped) < 2 or not stripped.startswith(PREFIXES) or stripped[1].isspace():
        return None
    head, *more = stripped[1:].split(maxsplit=1)  # the rest keeps its line breaks
    tail = more[0] if more else ""
    name = normalize(head.partition("@")[0]).replace(" ", "")
    if name not in NUMBERED:
        return DeskCommand(name or head, rest=tail.strip())
    tail = tail.strip()
    number = _NUMBER.match(tail)
    if number is None:
        return DeskCommand(name, rest=tail)
    return DeskCommand(name, int(number.group(1)), tail[number.end() :].strip())


def tap_payload(action: str, number: int) -> str:
    return f"{PAYLOAD_PREFIX}:{action}:{number}"


def parse_tap(payload: str) -> Tap | None:
    """ "desk:take:12" -> Tap; None for anything else (an old or forged button)."""
    prefix, _, rest = payload.partition(":")
    action, _, number = rest.partition(":")
    ticket = ascii_number(number)
    if prefix != PAYLOAD_PREFIX or action not in TAPS or ticket is None:
        return None
    return Tap(action, ticket)
