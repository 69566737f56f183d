"""What every chat channel offers the process that runs it (room: channels).

A channel translates one platform's updates into `Inbound`s for the conversation service and
its replies into messages; `lotse serve` starts, watches and stops all of them the same way
through this protocol (as opsdroid's connectors and Errbot's backends do). Channels are thin:
they read nothing from the store themselves, they ask the conversation service.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from bot.config import Settings
from bot.engine.decision import Reply

__all__ = ["Channel", "OnFailure", "Stopper"]

# Stops something started in the background; its work under way gets that many seconds.
Stopper = Callable[[float], Awaitable[None]]
# Told when a channel that started fails later (its sync loop ended with an error).
OnFailure = Callable[[BaseException], None]


class Channel(Protocol):
    """One chat platform's lifecycle, as `lotse serve` sees it."""

    name: str  # "telegram", "matrix": also the `channel` of its users in the store
    # True where only one instance may run it at a time (Matrix: one sync stream, one device);
    # `lotse serve` then runs it under the lease "channel:<name>" (bot/serve/leader.py).
    needs_lease: bool

    @staticmethod
    def configured(settings: Settings) -> bool:
        """Whether the settings ask for this channel at all."""
        ...

    @staticmethod
    def configuration_problem(settings: Settings) -> str | None:
        """Why the settings cannot work (checked before anything starts), or None."""
        ...

    @property
    def detail(self) -> str | None:
        """How it runs, for /healthz ("polling", "webhook"); None when there is nothing to say."""
        ...

    async def start(self, on_failure: OnFailure) -> None:
        """Connect and start taking updates; raises when it cannot. A failure after that
        (the connection lost for good) is reported to `on_failure`."""
        ...

    async def stop(self, within: float) -> None:
        """Take no new updates, let those under way finish for up to `within` seconds, close."""
        ...

    async def send(self, user: str, replies: list[Reply]) -> None:
        """Replies the user did not just ask for (an agent's answer, a stranded message)."""
        ...
