"""What the engine decides for one turn: replies to send and side effects to ask for."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from bot.engine.state import ConversationState, Option

__all__ = [
    "Action",
    "Attachment",
    "Decision",
    "DeleteUserData",
    "HandOver",
    "HandOverReason",
    "Reply",
    "RunCheck",
    "SendProfile",
]


@dataclass(frozen=True)
class Attachment:
    """A file sent with a reply (a configuration profile)."""

    filename: str
    content: bytes
    media_type: str


@dataclass(frozen=True)
class Reply:
    text: str
    options: tuple[Option, ...] = ()
    attachment: Attachment | None = None


@dataclass(frozen=True)
class RunCheck:
    """Test the mail server's encrypted ports (connection check service).

    `details`: the user asked for the details of the last result rather than a summary.
    """

    details: bool = False


HandOverReason = Literal["requested", "stuck", "unknown_program", "server_error"]


@dataclass(frozen=True)
class HandOver:
    """Hand the conversation to a human agent (ticket service)."""

    reason: HandOverReason


@dataclass(frozen=True)
class DeleteUserData:
    """Delete everything stored about the user (confirmed by them)."""


@dataclass(frozen=True)
class SendProfile:
    """Make and send an Apple configuration profile for this (checked) address."""

    address: str


Action = RunCheck | HandOver | DeleteUserData | SendProfile


@dataclass
class Decision:
    """The engine's answer.

    `outputs` keeps order: the replies of an action are sent where the action stands.
    """

    state: ConversationState
    outputs: list[Reply | Action] = field(default_factory=list)

    @property
    def replies(self) -> list[Reply]:
        return [item for item in self.outputs if isinstance(item, Reply)]

    @property
    def actions(self) -> list[Action]:
        return [item for item in self.outputs if not isinstance(item, Reply)]
