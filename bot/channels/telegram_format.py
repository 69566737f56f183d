"""Replies as Telegram messages: HTML-escaped text in pieces of at most 4096 characters, and
options as inline keyboards whose callback data fits Telegram's 64 bytes.

Pure functions, no network: the channel (`bot/channels/telegram.py`) sends what these return.
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Sequence
from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.constants import InlineKeyboardButtonLimit, MessageLimit

from bot.engine.decision import Reply
from bot.engine.state import Option
from bot.numbers import ascii_number

__all__ = [
    "DIGEST_MARK",
    "MAX_CALLBACK_DATA",
    "MAX_TEXT_LENGTH",
    "USER_ID_DIGITS",
    "OutgoingMessage",
    "button_owner",
    "callback_data",
    "escape",
    "keyboard",
    "option_for",
    "render_reply",
    "split_text",
    "telegram_length",
]

MAX_TEXT_LENGTH: int = MessageLimit.MAX_TEXT_LENGTH  # 4096, counted after HTML parsing
MAX_CALLBACK_DATA: int = InlineKeyboardButtonLimit.MAX_CALLBACK_DATA  # 64 bytes
USER_ID_DIGITS = 16  # Telegram user ids have up to 52 bits
# Marks callback data that stands for a payload too long (or too odd) to send as it is.
DIGEST_MARK = "#"


@dataclass(frozen=True)
class OutgoingMessage:
    """One `sendMessage`: HTML text and, on the last piece of a reply, the option buttons."""

    html: str
    keyboard: InlineKeyboardMarkup | None = None


def escape(text: str) -> str:
    """Text from the knowledge base or a user, safe in Telegram's HTML parse mode."""
    return html.escape(text, quote=False)


def telegram_length(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units: an emoji may count twice)."""
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int = MAX_TEXT_LENGTH) -> list[str]:
    """Pieces of at most `limit` characters, cut at line breaks where possible.

    A single line longer than the limit is cut between words, a single overlong word anywhere.
    Works on the unescaped text: Telegram counts the length after parsing the HTML entities.
    """
    pieces: list[str] = []
    current: list[str] = []
    current_length = 0
    for line in _short_lines(text, limit):
        added = telegram_length(line) + (1 if current else 0)  # +1 for the "\n" joining them
        if current and current_length + added > limit:
            pieces.append("\n".join(current))
            current, current_length = [], 0
            added = telegram_length(line)
        current.append(line)
        current_length += added
    pieces.append("\n".join(current))
    # Telegram refuses empty or blank messages; a cut at a blank line must not produce one.
    kept = [piece.strip("\n") for piece in pieces if piece.strip()]
    return kept or [text]


def _short_lines(text: str, limit: int) -> list[str]:
    lines: list[str] = []
    for line in text.split("\n"):
        if telegram_length(line) <= limit:
            lines.append(line)
        else:
            lines.extend(_cut_line(line, limit))
    return lines


def _cut_line(line: str, limit: int) -> list[str]:
    """An overlong line in pieces: between words, and inside a word only when it must."""
    pieces: list[str] = []
    current = ""
    for word in line.split(" "):
        candidate = f"{current} {word}" if current else word
        if telegram_length(candidate) <= limit:
            current = candidate
            continue
        if current:
            pieces.append(current)
        current = word
        while telegram_length(current) > limit:
            head = _longest_prefix(current, limit)
            pieces.append(head)
            current = current[len(head) :]
    if current:
        pieces.append(current)
    return pieces


def _longest_prefix(text: str, limit: int) -> str:
    length = 0
    for index, character in enumerate(text):
        length += telegram_length(character)
        if length > limit:
            return text[:index]
    return text


def callback_data(payload: str, version: int, owner: int | None = None) -> str:
    """A button's callback data: the conversation's version when the question was asked, and
    the option's payload as it is when that fits in 64 bytes, else a digest of it. In a group
    `owner` is the user whose question it is: "<owner>:<version>|<payload>".

    On a tap, `option_for` resolves it against the options the user was offered last, and only
    at that same version: a second tap on the same button, or a tap on the buttons of a question
    the user has since answered by typing, no longer matches, even where the payload does (every
    step offers "next_step"). Nothing has to be remembered in between, so this holds across
    restarts and across bot instances.
    """
    prefix = f"{version}|" if owner is None else f"{owner}:{version}|"
    data = prefix + payload
    if len(data.encode("utf-8")) <= MAX_CALLBACK_DATA and not payload.startswith(DIGEST_MARK):
        return data
    digest = hashlib.sha256(payload.encode("utf-8")).digest()[:24]
    return prefix + DIGEST_MARK + base64.urlsafe_b64encode(digest).decode("ascii")


def option_for(
    data: str, options: Sequence[Option], version: int, owner: int | None = None
) -> Option | None:
    """The offered option a button stands for; None for a button of an earlier question."""
    return next((o for o in options if callback_data(o.payload, version, owner) == data), None)


def button_owner(data: str) -> int | None:
    """Whose question a button of a group chat answers; None for a private chat's button."""
    head, separator, _payload = data.partition("|")
    owner, colon, _version = head.partition(":")
    if not separator or not colon:
        return None
    return ascii_number(owner, USER_ID_DIGITS)


def keyboard(
    options: Sequence[Option], version: int, owner: int | None = None
) -> InlineKeyboardMarkup | None:
    """One button per row: labels such as "Mit einem Menschen sprechen" need the width."""
    if not options:
        return None
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(
                    option.label, callback_data=callback_data(option.payload, version, owner)
                )
            ]
            for option in options
        ]
    )


def render_reply(
    reply: Reply, version: int = 0, limit: int = MAX_TEXT_LENGTH, owner: int | None = None
) -> list[OutgoingMessage]:
    """A reply as the messages to send; the buttons go with the last piece of text.

    `version`: the conversation's version after the turn that asked (see `callback_data`);
    `owner`: in a group, the user whose question it is.
    """
    pieces = [escape(piece) for piece in split_text(reply.text, limit)]
    messages = [OutgoingMessage(piece) for piece in pieces[:-1]]
    messages.append(OutgoingMessage(pieces[-1], keyboard(reply.options, version, owner)))
    return messages
