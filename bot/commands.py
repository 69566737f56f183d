"""The commands users can send, in one table (room: between the channels and the service).

Every place that lists them reads this table: the conversation service's dispatch (a command
with an `intent` is understood as that intent; the others have their own branch there), the
Telegram menu (`set_my_commands`, one per language), Matrix's `!`/`/` parser, and the answer to
an unknown command. The order is the order a menu shows them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bot.i18n import Translator

__all__ = ["COMMANDS", "COMMAND_INTENTS", "TABLE", "UserCommand", "menu"]


@dataclass(frozen=True)
class UserCommand:
    """One command: its name (without the slash), the intent it stands for when it is just
    a shortcut for something the user could also write, and its description for a menu."""

    name: str
    describe: Callable[[Translator], str]
    intent: str | None = None


# The descriptions are lambdas so that the German text stands here as a gettext message id
# and is translated when a menu is built, in the language of that menu.
TABLE: tuple[UserCommand, ...] = (
    UserCommand("start", lambda tr: tr.gettext("Gespräch beginnen oder fortsetzen")),
    UserCommand("neu", lambda tr: tr.gettext("Von vorne anfangen"), intent="restart"),
    UserCommand(
        "pruefen",
        lambda tr: tr.gettext("Verbindung zum Mailserver testen"),
        intent="request_check",
    ),
    UserCommand(
        "mensch", lambda tr: tr.gettext("Mit einem Menschen sprechen"), intent="request_human"
    ),
    UserCommand("hilfe", lambda tr: tr.gettext("Was ich kann und wie Sie mit mir schreiben")),
    UserCommand(
        "loeschen", lambda tr: tr.gettext("Meine gespeicherten Daten löschen"), intent="delete_data"
    ),
    UserCommand("sprache", lambda tr: tr.gettext("Sprache wählen")),
    # Returns a user from a helpdesk agent to Lotse.
    UserCommand("bot", lambda tr: tr.gettext("Vom Helpdesk zurück zu Lotse")),
)

COMMANDS: tuple[str, ...] = tuple(command.name for command in TABLE)
COMMAND_INTENTS: dict[str, str] = {
    command.name: command.intent for command in TABLE if command.intent is not None
}


def menu(tr: Translator) -> list[tuple[str, str]]:
    """(name, description) of every command in one language, in menu order."""
    return [(command.name, command.describe(tr)) for command in TABLE]
