"""Replies as Matrix message contents, and Matrix text messages as what the user said.

Pure functions, no network: `bot/channels/matrix.py` sends and receives what these handle.

- A reply becomes one `m.notice` (the message type for automated senders, which other bots
  must not answer) with a plain `body` and an HTML `formatted_body`
  (`org.matrix.custom.html`); options follow the text as a numbered list, and the user
  answers with the number or the label.
- Everything from the knowledge base and from users is HTML-escaped: no tag, link or entity
  in a guide step can change how Element shows the message.
- A message is a command when it starts with `!` or `/` followed by one of the bot's commands
  ("!neu", "/pruefen", "!prüfen"); anything else is text for the conversation service.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.commands import COMMANDS
from bot.engine.decision import Reply
from bot.normalize import normalize

__all__ = [
    "COMMAND_PREFIXES",
    "HTML_FORMAT",
    "MSGTYPE",
    "Command",
    "escape",
    "is_edit",
    "is_reply",
    "message_text",
    "parse_command",
    "reply_body",
    "reply_content",
    "reply_html",
    "strip_reply_fallback",
    "text_html",
]

MSGTYPE = "m.notice"
HTML_FORMAT = "org.matrix.custom.html"
COMMAND_PREFIXES = ("!", "/")


@dataclass(frozen=True)
class Command:
    name: str
    argument: str | None = None


def escape(text: str) -> str:
    """Text from the knowledge base or a user, safe inside `formatted_body`."""
    return html.escape(text, quote=True)


def text_html(text: str) -> str:
    """Plain text as HTML that looks the same: line breaks kept, indentation kept.

    HTML collapses spaces, so a nested bullet's leading spaces become non-breaking ones.
    """
    lines = []
    for line in text.split("\n"):
        stripped = line.lstrip(" ")
        indent = "&nbsp;" * (len(line) - len(stripped))
        lines.append(indent + escape(stripped))
    return "<br>".join(lines)


def reply_body(reply: Reply) -> str:
    """The plain body: the text, then the options as "1. label" lines."""
    if not reply.options:
        return reply.text
    numbered = "\n".join(
        f"{number}. {option.label}" for number, option in enumerate(reply.options, 1)
    )
    return f"{reply.text}\n\n{numbered}"


def reply_html(reply: Reply) -> str:
    """The HTML body: the text, then the options as an ordered list."""
    formatted = text_html(reply.text)
    if reply.options:
        items = "".join(f"<li>{escape(option.label)}</li>" for option in reply.options)
        formatted += f"<ol>{items}</ol>"
    return formatted


def reply_content(reply: Reply) -> dict[str, Any]:
    """The `m.room.message` content of one reply."""
    return {
        "msgtype": MSGTYPE,
        "body": reply_body(reply),
        "format": HTML_FORMAT,
        "formatted_body": reply_html(reply),
    }


def strip_reply_fallback(body: str) -> str:
    """A reply's own text, without the quoted message clients put in front ("> <@a:b> ...")."""
    lines = body.split("\n")
    index = 0
    while index < len(lines) and lines[index].startswith(">"):
        index += 1
    if index == 0:
        return body
    if index < len(lines) and lines[index] == "":
        index += 1
    return "\n".join(lines[index:])


def is_reply(content: Mapping[str, Any]) -> bool:
    relates = content.get("m.relates_to")
    return isinstance(relates, Mapping) and "m.in_reply_to" in relates


def is_edit(content: Mapping[str, Any]) -> bool:
    """An edit of an earlier message: already answered in its first form, so not again."""
    relates = content.get("m.relates_to")
    return isinstance(relates, Mapping) and relates.get("rel_type") == "m.replace"


def message_text(content: Mapping[str, Any]) -> str:
    """What the user wrote in an `m.text` message."""
    body = content.get("body")
    text = body if isinstance(body, str) else ""
    return strip_reply_fallback(text) if is_reply(content) else text


def parse_command(text: str) -> Command | None:
    """ "!neu" or "/sprache en" -> Command; None for text. An unknown "!word" is a command
    too: the service tells the user which commands it knows, as on Telegram and the terminal."""
    stripped = text.strip()
    if not stripped.startswith(COMMAND_PREFIXES) or len(stripped) < 2:
        return None
    word, _, rest = stripped[1:].partition(" ")
    name = normalize(word)  # "!prüfen" is "pruefen"
    if name not in COMMANDS and not word.isalpha():  # "!!!", "! neu", "/5"
        return None
    return Command(name, rest.strip() or None)
