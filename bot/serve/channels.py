"""The chat channels `lotse serve` can run, each with what runs beside it (room: wiring).

Channels (bot/channels/) know one platform; the agents' chats (bot/agents/) build on them.
This module is where the two meet, so neither imports the other the wrong way: each channel
is made with its agents' chat attached through its constructor, and with the companions that
run only while the channel runs in this process (answering messages a stop left unanswered,
delivering what other instances queued for it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bot.agents.matrix import connect_agents as connect_matrix_agents
from bot.agents.telegram import connect_agents as connect_telegram_agents
from bot.app import App
from bot.channels.base import Channel, OnFailure, Stopper
from bot.channels.matrix import MatrixRunner
from bot.channels.telegram import AnyApplication, TelegramChannel, TelegramRunner
from bot.config import Settings
from bot.engine.decision import Reply
from bot.serve.stranded import start_answering_stranded

__all__ = [
    "BUILDERS",
    "KINDS",
    "Companion",
    "WithCompanions",
    "configured_channels",
    "kind",
    "matrix",
    "matrix_with_agents",
    "telegram",
]

# Every channel there is, in the order they start. Each is configured by its own settings.
KINDS: tuple[type[Channel], ...] = (TelegramRunner, MatrixRunner)
Companion = Callable[[], Stopper | None]


def kind(name: str) -> type[Channel]:
    return next(kind for kind in KINDS if kind.name == name)


def configured_channels(settings: Settings) -> list[str]:
    return [kind.name for kind in KINDS if kind.configured(settings)]


def telegram(app: App) -> Channel:
    """Telegram with the agents' group; answering stranded messages once it runs."""
    settings, desk = app.settings, app.desk

    def attach(application: AnyApplication, channel: TelegramChannel) -> Stopper:
        connect_telegram_agents(application, channel, settings, desk)
        return lambda within: desk.stop_delivery(TelegramRunner.name, within)

    runner = TelegramRunner(settings, app.service, attach=attach)
    return WithCompanions(runner, [lambda: start_answering_stranded(app, runner.name)])


def matrix_with_agents(app: App) -> MatrixRunner:
    return MatrixRunner(
        app.settings,
        app.service,
        attach=lambda runner: connect_matrix_agents(runner, app.settings, app.desk),
    )


def matrix(app: App) -> Channel:
    """Matrix with the agents' room; once it runs, delivering what this and other instances
    queued for Matrix users and the Matrix agents' room (bot/tickets/channel_outbox.py)."""
    runner = matrix_with_agents(app)
    return WithCompanions(runner, [lambda: app.desk.deliver(runner.name)])


BUILDERS: dict[str, Callable[[App], Channel]] = {
    TelegramRunner.name: telegram,
    MatrixRunner.name: matrix,
}


class WithCompanions:
    """A channel plus what runs beside it while it runs here (started after it, stopped
    before it)."""

    def __init__(self, channel: Channel, companions: Sequence[Companion]) -> None:
        self.channel = channel
        self.name = channel.name
        self.needs_lease = channel.needs_lease
        self._companions = companions
        self._stoppers: list[Stopper] = []

    @staticmethod
    def configured(settings: Settings) -> bool:
        raise NotImplementedError("ask the channel's class")

    @staticmethod
    def configuration_problem(settings: Settings) -> str | None:
        raise NotImplementedError("ask the channel's class")

    @property
    def detail(self) -> str | None:
        return self.channel.detail

    async def start(self, on_failure: OnFailure) -> None:
        await self.channel.start(on_failure)
        self._stoppers = [stop for start in self._companions if (stop := start()) is not None]

    async def stop(self, within: float) -> None:
        for stop in self._stoppers:
            await stop(within)
        self._stoppers = []
        await self.channel.stop(within)

    async def send(self, user: str, replies: list[Reply]) -> None:
        await self.channel.send(user, replies)
