"""The terminal channel, `lotse chat`.

On a terminal it is interactive and opens with a greeting (or where the user stood). With piped
input it reads one user message per line, prints the replies and exits at the end of input.
Options are printed as a numbered list; the user answers with the number or the text.
`--json` prints each reply as one JSON line `{"text": ..., "options": [...]}`.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from bot.conversation import ConversationService
from bot.engine.decision import Attachment, Reply
from bot.i18n import translator
from bot.turns import Inbound

__all__ = ["CHANNEL", "ConsoleChannel", "format_reply", "parse_line", "save_attachment"]

CHANNEL = "console"


def parse_line(user: str, line: str, locale: str | None) -> Inbound:
    """A typed line: "/neu" and "/start g_thunderbird" are commands, everything else text."""
    if line.startswith("/") and len(line) > 1 and not line[1:2].isspace():
        command, _, argument = line[1:].partition(" ")
        return Inbound(
            CHANNEL, user, command=command.lower(), argument=argument.strip() or None, locale=locale
        )
    return Inbound(CHANNEL, user, text=line, locale=locale)


def save_attachment(attachment: Attachment, directory: Path) -> Path:
    """Write a file the bot sent (a profile) next to the user, never over an existing file."""
    target = directory / attachment.filename
    number = 1
    while target.exists():
        number += 1
        target = directory / f"{Path(attachment.filename).stem}-{number}{target.suffix}"
    target.write_bytes(attachment.content)
    return target


def format_reply(reply: Reply, as_json: bool, saved: Path | None = None) -> str:
    if as_json:
        payload: dict[str, object] = {
            "text": reply.text,
            "options": [option.label for option in reply.options],
        }
        if saved is not None:
            payload["file"] = str(saved)
        return json.dumps(payload, ensure_ascii=False)
    lines = [reply.text]
    if saved is not None:
        lines.append(f"  → {saved}")
    lines.extend(f"  {number}) {option.label}" for number, option in enumerate(reply.options, 1))
    return "\n".join(lines)


class ConsoleChannel:
    def __init__(
        self,
        service: ConversationService,
        *,
        user: str,
        as_json: bool = False,
        locale: str | None = None,
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
    ) -> None:
        self.service = service
        self.user = user
        self.as_json = as_json
        self.locale = locale
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        # The prompt's label for the user ("Sie" / "You").
        self._you = translator(locale or service.default_locale).gettext("Sie")

    @property
    def interactive(self) -> bool:
        return self.stdin.isatty() and self.stdout.isatty()

    async def run(self) -> None:
        if self.interactive:
            await self._send(Inbound(CHANNEL, self.user, command="start", locale=self.locale))
        lines = self._lines()
        # Reading blocks, so it runs in a thread and the event loop stays free.
        while (line := await asyncio.to_thread(next, lines, None)) is not None:
            if line.strip():
                await self._send(parse_line(self.user, line, self.locale))

    def _lines(self) -> Iterator[str]:
        if self.interactive:
            import readline  # noqa: F401  (line editing and history for input())

            while True:
                try:
                    yield input(self._you + ": ")
                except (EOFError, KeyboardInterrupt):
                    self.stdout.write("\n")
                    return
        else:
            for line in self.stdin:
                yield line.rstrip("\r\n")

    async def _send(self, inbound: Inbound) -> None:
        replies = await self.service.handle(inbound)
        for reply in replies:
            saved = None
            if reply.attachment is not None:
                saved = await asyncio.to_thread(save_attachment, reply.attachment, Path.cwd())
            text = format_reply(reply, self.as_json, saved)
            if self.interactive:
                text = "Lotse: " + text + "\n"  # the bot's name is not translated
            self.stdout.write(text + "\n")
        self.stdout.flush()
