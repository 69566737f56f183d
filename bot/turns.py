"""The words of one turn (room: between the channels and the service, above the engine): what a
user did (`Inbound`), what an action handler gets (`ActionContext`) and gives back (`Handled`:
replies plus a typed `StateChange` the service applies), and the middleware every turn runs
through (`TurnMiddleware`: tickets, relays and hand-back links hook in there).

A leaf for the rooms beside the service: channels, check, profiles and tickets import this
module, never `bot.conversation`, and the conversation service imports none of them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.engine.decision import Action, Decision, Reply
from bot.engine.engine import Engine, secret_warning
from bot.engine.state import ConversationState
from bot.gate import CleanedText
from bot.i18n import Translator

__all__ = [
    "ActionContext",
    "ActionHandler",
    "Handled",
    "Inbound",
    "StateChange",
    "Turn",
    "TurnMiddleware",
    "TurnRecord",
    "warn_of_secret",
]


@dataclass(frozen=True)
class Inbound:
    """One thing a user did: typed text, tapped an option, or sent a command."""

    channel: str
    user: str  # the platform's id for the user (pseudonymous)
    text: str | None = None
    option: str | None = None  # payload of a tapped option
    command: str | None = None  # "start", "neu", "hilfe", ... without the slash
    argument: str | None = None  # e.g. the deep-link payload of /start
    locale: str | None = None  # the platform's language hint, used on first contact


@dataclass(frozen=True)
class ActionContext:
    inbound: Inbound
    state: ConversationState  # read only: a handler says what changes in its `StateChange`
    translator: Translator


@dataclass(frozen=True)
class StateChange:
    """What an action changes in the conversation; None leaves a field as it is."""

    last_check: dict[str, Any] | None = None  # a check's result, for agents and the tickets
    ticket: int | None = None  # the ticket a hand-over opened or referred to

    def applied_to(self, state: ConversationState) -> ConversationState:
        changed: dict[str, Any] = {}
        if self.last_check is not None:
            changed["last_check"] = self.last_check
        if self.ticket is not None:
            changed["ticket"] = self.ticket
        return dataclasses.replace(state, **changed) if changed else state

    def then(self, later: StateChange) -> StateChange:
        """This change followed by `later` (whose fields win)."""
        return StateChange(
            last_check=later.last_check if later.last_check is not None else self.last_check,
            ticket=later.ticket if later.ticket is not None else self.ticket,
        )


@dataclass(frozen=True)
class Handled:
    """What an action handler did: the replies to send where the action stood, and the change
    to the conversation's state."""

    replies: list[Reply]
    change: StateChange = StateChange()


ActionHandler = Callable[[Action, ActionContext], Awaitable[Handled]]


@dataclass
class Turn:
    """One turn as the middlewares see it, before the engine decides. A middleware may replace
    `state` (a ticket closed meanwhile is dropped from it) for the rest of the turn."""

    inbound: Inbound
    cleaned: CleanedText | None  # the gate's verdict on the user's words; None for a tap
    before: ConversationState  # as the turn found it
    state: ConversationState  # as the turn goes on with it
    translator: Translator
    updated_at: datetime | None  # when the conversation was last saved (for a welcome back)
    engine_for: Callable[[ConversationState], Engine]
    # Set by a middleware that put the user's message into a record of its own already (a
    # message relayed to the agent is in the ticket), so after the turn it is not added twice.
    message_recorded: bool = False


@dataclass(frozen=True)
class TurnRecord:
    """A saved turn, for the records after it."""

    message: str  # the user's message as the transcript keeps it
    decided: ConversationState  # as the turn decided it
    after: ConversationState  # as it was saved (after every `before_save`)
    replies: list[str]  # the replies as the transcript keeps them


class TurnMiddleware:
    """Hooks into every turn, in the order the service was given them. Each hook does nothing
    here; a middleware overrides the ones it needs."""

    async def before_turn(self, turn: Turn) -> Decision | None:
        """Decide the turn (the engine is not asked), or None to let it go on."""
        return None

    def before_save(self, turn: Turn, state: ConversationState) -> ConversationState:
        """The state to save: what the middleware marks in it goes out with this turn's save."""
        return state

    async def after_turn(self, turn: Turn, record: TurnRecord) -> None:
        """The turn is saved: record it. The user has their answer, so a failure here is
        logged by the middleware, not raised."""

    async def keeps_lotse_quiet(self, state: ConversationState) -> bool:
        """Whether Lotse asks nothing of its own now (an agent has the user)."""
        return False

    async def forget_user(self, channel: str, user: str) -> None:
        """The user asked to have their data deleted: delete what this middleware keeps."""


def warn_of_secret(decision: Decision, cleaned: CleanedText, tr: Translator) -> Decision:
    """A password was removed from what the user sent: say so first, whatever else is said."""
    if cleaned.had_secret:
        decision.outputs.insert(0, Reply(secret_warning(tr)))
    return decision
