"""The state of one conversation: where the user stands. Saved as JSON after every turn."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["ConversationState", "Option", "Stage"]


class Stage(StrEnum):
    START = "start"  # nothing said yet
    PROGRAM = "program"  # asked which mail program
    VERSION = "version"  # asked which version (only when the program has several guides)
    PROTOCOL = "protocol"  # asked IMAP or POP3 (only when the guide differs by protocol)
    GUIDE = "guide"  # walking through the steps
    FINISHED = "finished"  # past the last step, settings shown
    CONFIRM_DELETE = "confirm_delete"  # asked whether to delete all data
    PROFILE_ADDRESS = "profile_address"  # asked for the address a profile is made for


@dataclass(frozen=True)
class Option:
    """A choice offered with a question. `payload` is short (Telegram callback data <= 64 bytes)."""

    label: str
    payload: str


@dataclass
class ConversationState:
    stage: Stage = Stage.START
    locale: str = "de"
    # The user chose the language (/sprache, "English please") or their text showed it
    # clearly; then what they write later (a quoted German error message) does not switch it.
    locale_settled: bool = False
    program: str | None = None
    guide: str | None = None
    version: str | None = None
    protocol: str | None = None
    # A program without a guide (knowledge/cards.yaml) whose settings card was shown.
    card: str | None = None
    step: int = 0  # 0-based index into the guide's steps for `protocol`
    revision: str | None = None  # knowledge revision the guide was started with
    problems_at_step: int = 0
    # Answers at the open question that did not answer it ("hä?", "keine Ahnung"): the bot
    # explains, offers its default, then a person, and never says the same thing twice in a row.
    misses: int = 0
    previous_stage: Stage | None = None  # where to return after CONFIRM_DELETE
    options: list[Option] = field(default_factory=list)  # the last options offered
    # The last connection check's result (CheckReport.as_json()), kept for agents to see.
    last_check: dict[str, Any] | None = None
    # The user's active ticket (bot.tickets): while an agent has it, Lotse stays silent.
    ticket: int | None = None
    # The hand-back link the user came with; its outcome is mailed to the helpdesk.
    handoff_link: str | None = None
    # The link outcomes already mailed ("finished", "human", "check"): each goes out once.
    link_reported: list[str] = field(default_factory=list)
    # The ticket for which the user was told (once) that their messages now reach an agent.
    relay_noted: int | None = None

    def to_json(self) -> dict[str, Any]:
        # By hand: dataclasses.asdict deep-copies and took a third of a turn's engine time.
        data = {f.name: getattr(self, f.name) for f in _FIELDS}
        data["options"] = [{"label": o.label, "payload": o.payload} for o in self.options]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ConversationState:
        known = {f.name for f in _FIELDS}
        values = {key: value for key, value in data.items() if key in known}
        values["stage"] = Stage(values.get("stage", Stage.START))
        if values.get("previous_stage"):
            values["previous_stage"] = Stage(values["previous_stage"])
        values["options"] = [Option(**option) for option in values.get("options", [])]
        return cls(**values)

    def fresh(self) -> ConversationState:
        """A new conversation for the same user (keeps the language and an active ticket)."""
        return ConversationState(
            locale=self.locale, locale_settled=self.locale_settled, ticket=self.ticket
        )


_FIELDS = dataclasses.fields(ConversationState)
