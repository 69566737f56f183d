"""Test helpers: the repo's knowledge base, apps built by `build_app` on a temporary SQLite file
(with or without tickets), `Chat`, which talks to the service the way a channel does, pinned
clocks, free ports, and `wait_until` for what nothing signals."""

from __future__ import annotations

import asyncio
import inspect
import random
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, overload
from zoneinfo import ZoneInfo

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from bot.agents.telegram import connect_agents
from bot.app import App, build_app
from bot.channels.matrix import DRAIN_SECONDS as MATRIX_DRAIN_SECONDS
from bot.channels.telegram import ALLOWED_UPDATES, TelegramChannel, build_application
from bot.clock import utcnow
from bot.config import Settings
from bot.conversation import ConversationService
from bot.engine.decision import Reply
from bot.engine.state import ConversationState
from bot.knowledge.base import KnowledgeBase
from bot.knowledge.loader import load_knowledge
from bot.knowledge.registry import KnowledgeRegistry
from bot.serve.channels import matrix_with_agents
from bot.storage.store import Store
from bot.storage.tables import Conversation, User
from bot.tickets.service import TicketService
from bot.turns import Inbound

if TYPE_CHECKING:  # imported as a plugin after this module; only the annotation needs it
    from tests.servers.telegram_api import FakeTelegram

REPO = Path(__file__).resolve().parents[1]
KNOWLEDGE_DIR = REPO / "knowledge"

T = TypeVar("T")


# --- ports and waiting -------------------------------------------------------------------

_handed_out: set[int] = set()
_ports_lock = threading.Lock()


def free_port() -> int:
    """A port free on 127.0.0.1 and 127.0.0.2 (the mail servers listen on both), below
    Linux's ephemeral range (32768+) so no outgoing connection takes it before the server
    binds it; never the same one twice in this process (servers start in parallel threads)."""
    with _ports_lock:
        for _ in range(1000):
            port = random.randrange(20000, 32000)
            if port in _handed_out:
                continue
            try:
                for host in ("127.0.0.1", "127.0.0.2"):
                    with socket.socket() as sock:
                        sock.bind((host, port))
            except OSError:
                continue
            _handed_out.add(port)
            return port
    raise RuntimeError("no free port found")


@overload
async def wait_until(
    probe: Callable[[], Awaitable[T | None]],
    what: str | Callable[[], str],
    *,
    within: float = ...,
    every: float = ...,
) -> T: ...
@overload
async def wait_until(
    probe: Callable[[], T | None],
    what: str | Callable[[], str],
    *,
    within: float = ...,
    every: float = ...,
) -> T: ...
async def wait_until(
    probe: Callable[[], Any],
    what: str | Callable[[], str],
    *,
    within: float = 15.0,
    every: float = 0.05,
) -> Any:
    """Call `probe` (plain or async) until it returns something true, and return that; fail
    saying what never came. Only for what nothing signals (a server coming up over HTTP, a
    row in another process's database, a file Postfix delivers); wait on an event where the
    code under test offers one."""
    deadline = time.monotonic() + within
    while True:
        result = probe()
        value = await result if inspect.isawaitable(result) else result
        if value:
            return value
        if time.monotonic() > deadline:
            described = what() if callable(what) else what
            raise AssertionError(f"timed out after {within:g} s waiting for {described}")
        await asyncio.sleep(every)


@pytest.fixture(scope="session")
def knowledge() -> KnowledgeBase:
    return load_knowledge(KNOWLEDGE_DIR)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'lotse.sqlite3'}"


def settings_for(url: str, **overrides: Any) -> Settings:
    """Settings for a test app: the repo's knowledge and `url`, nothing from the environment."""
    return Settings(_env_file=None, database_url=url, knowledge_dir=KNOWLEDGE_DIR, **overrides)


async def open_app(
    url: str,
    knowledge: KnowledgeBase | KnowledgeRegistry,
    *,
    tickets: bool = False,
    check: bool = False,
    clock: Callable[[], datetime] | None = None,
    store: Store | None = None,
    **settings: Any,
) -> App:
    """An app as `build_app` makes it, with the connection check only when `check` is given
    (else a user who asks for one gets the helpdesk's contact). Without `tickets` a user
    who asks for a human gets the helpdesk's contact; with them, tickets queue mail to the
    helpdesk queue (`HELPDESK_QUEUE`; a test that delivers it runs the queue itself) and
    hand-back links work, with the clock pinned to `THURSDAY_EVENING` unless given: what
    users are told depends on the helpdesk's hours. `settings` override the test's settings
    (the check's CA file, say). A knowledge base stays fixed; a registry is the test's to
    reload. Close the app with `app.close()` (or `app.service.close()`)."""
    overrides = {**(TICKET_SETTINGS if tickets else {}), **settings}
    return await build_app(
        settings_for(url, **overrides),
        registry=(
            knowledge
            if isinstance(knowledge, KnowledgeRegistry)
            else KnowledgeRegistry.fixed(knowledge)
        ),
        clock=clock or (lambda: THURSDAY_EVENING),
        check=check,
        hand_over=tickets,
        store=store,
    )


async def open_service(url: str, knowledge: KnowledgeBase) -> ConversationService:
    """The conversation service of an app without tickets (see `open_app`)."""
    return (await open_app(url, knowledge)).service


@pytest.fixture
async def app(
    request: pytest.FixtureRequest, sqlite_url: str, knowledge: KnowledgeBase
) -> AsyncIterator[App]:
    """The app on a temporary SQLite file; with tickets when the test asks for `tickets`."""
    app = await open_app(sqlite_url, knowledge, tickets="tickets" in request.fixturenames)
    yield app
    await app.close()


@pytest.fixture
def service(app: App) -> ConversationService:
    return app.service


@dataclass
class Chat:
    """One user talking to the service; keeps the last replies for assertions."""

    service: ConversationService
    user: str = "anna"
    channel: str = "test"
    replies: list[Reply] = field(default_factory=list)

    async def say(self, text: str) -> list[Reply]:
        return await self._send(Inbound(self.channel, self.user, text=text))

    async def tap(self, label: str) -> list[Reply]:
        """Tap the offered option with this label (as a button press would)."""
        options = [option for reply in self.replies for option in reply.options]
        payload = next(o.payload for o in options if o.label == label)
        return await self._send(Inbound(self.channel, self.user, option=payload))

    async def command(self, name: str, argument: str | None = None) -> list[Reply]:
        return await self._send(Inbound(self.channel, self.user, command=name, argument=argument))

    async def _send(self, inbound: Inbound) -> list[Reply]:
        self.replies = await self.service.handle(inbound)
        return self.replies

    @property
    def text(self) -> str:
        return "\n".join(reply.text for reply in self.replies)

    @property
    def options(self) -> list[str]:
        return [option.label for reply in self.replies for option in reply.options]

    async def state(self) -> ConversationState:
        query = (
            select(Conversation.state)
            .join(User, User.id == Conversation.user_id)
            .where(User.channel == self.channel, User.external_id == self.user)
        )
        saved = await self.service.store.run(lambda conn: conn.execute(query).scalar_one_or_none())
        return ConversationState.from_json(saved or {})


HELPDESK_QUEUE = "servicedesk@helpdesk.lotse.test"  # the mailbox in tests.servers.mail
MAIL_FROM = "lotse@uni-beispiel.de"
LINK_SECRET = "test-handoff-secret-of-32-characters"  # MIN_SECRET_LENGTH


BERLIN = ZoneInfo("Europe/Berlin")  # the helpdesk's time zone in knowledge/server.yaml


def berlin(text: str) -> datetime:
    """A moment in the helpdesk's time zone: `berlin("2026-12-03 18:30")`."""
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN)


def clock_at(moment: datetime) -> Callable[[], datetime]:
    """A clock that always says `moment`: what tests give services instead of the real one."""
    return lambda: moment


# Thursday after the helpdesk closed (16:00): tickets opened "now" are answered tomorrow. In
# the past: the ticket mail it stamps is due for a mail queue that runs on the real clock.
THURSDAY_EVENING = berlin("2026-11-26 18:30")


# Tickets in test apps: mail queued for the helpdesk queue, hand-back links with this secret.
TICKET_SETTINGS: dict[str, Any] = {
    "helpdesk_email": HELPDESK_QUEUE,
    "mail_from": MAIL_FROM,
    "smtp_url": SecretStr("smtp://127.0.0.1:25"),  # queued only: nothing here delivers it
    "handoff_secret": SecretStr(LINK_SECRET),
}
# Tickets that queue no mail (no helpdesk address) and no hand-back links.
WITHOUT_MAIL: dict[str, Any] = {"helpdesk_email": None, "handoff_secret": None}


async def serve_matrix(
    settings: Settings,
    app: App | None = None,
    *,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """The Matrix channel with its agents' room, as `lotse serve` builds it but alone (no
    lease, no jobs, no outbox delivery), until cancelled; raises when the channel fails.
    Without `app` one is built from the settings and closed at the end."""
    own_app = app is None
    if app is None:
        app = await build_app(settings)
    channel = matrix_with_agents(app)
    failed: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    def fail(error: BaseException) -> None:
        if not failed.done():
            failed.set_result(error)

    try:
        await channel.start(fail)
        if on_ready is not None:
            on_ready()
        raise await failed
    finally:
        await channel.stop(MATRIX_DRAIN_SECONDS)
        if own_app:
            await app.close()


@pytest.fixture
def tickets(app: App) -> TicketService:
    """The tickets of the `app` fixture (which then has them)."""
    return app.tickets


@dataclass
class UserInbox:
    """What the ticket service pushed to users of one channel (as a channel would send it)."""

    sent: dict[str, list[Reply]] = field(default_factory=dict)

    async def send(self, user: str, replies: list[Reply]) -> None:
        self.sent.setdefault(user, []).extend(replies)

    def text(self, user: str) -> str:
        return "\n".join(reply.text for reply in self.sent.get(user, []))


@dataclass
class StepClock:
    """A clock a test moves by hand, for code that takes `clock=` (starts at the real now)."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


# --- the Telegram part of `lotse serve` with its agents' group ----------------------------

AGENT_CHAT = -1001234567890  # the agents' Telegram group in tests


@pytest.fixture
async def tickets_app(sqlite_url: str, knowledge: KnowledgeBase) -> AsyncIterator[App]:
    """An app with tickets that queue no mail, on the real clock."""
    app = await open_app(sqlite_url, knowledge, tickets=True, clock=utcnow, **WITHOUT_MAIL)
    yield app
    await app.close()


@pytest.fixture
async def agents_group_bot(telegram_api: FakeTelegram, tickets_app: App) -> AsyncIterator[None]:
    """The Telegram part of `lotse serve`, with the agents' group."""
    settings = Settings(
        _env_file=None,
        telegram_token=SecretStr(telegram_api.token),
        telegram_base_url=telegram_api.base_url,
        telegram_agent_chat=AGENT_CHAT,
    )
    app = build_application(settings)
    channel = TelegramChannel(tickets_app.service)
    channel.install(app)
    await app.initialize()
    desk = tickets_app.desk
    connect_agents(app, channel, settings, desk)
    assert app.updater is not None
    await app.updater.start_polling(timeout=1, allowed_updates=ALLOWED_UPDATES)
    await app.start()
    try:
        yield
    finally:
        await desk.drain()
        await app.updater.stop()
        await app.stop()
        await app.shutdown()
