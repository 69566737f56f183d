"""Restarts lose nothing: a message whose turn was cut off (the instance stopped or killed while
a slow check ran) is answered after the restart, once, however many instances start; a
database locked for a while is waited for, and one locked for too long is told truthfully."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sqlite3
import sys
from asyncio.subprocess import Process
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from bot.app import App
from bot.conversation import ConversationService
from bot.knowledge.base import KnowledgeBase
from bot.knowledge.loader import load_knowledge
from bot.serve.jobs import JobRunner
from bot.serve.stranded import answer_stranded, sweep_job
from bot.storage.store import Store
from bot.turns import Inbound
from bot.understanding.lexicon import LexiconUnderstander
from tests.servers.telegram_api import FakeTelegram, FakeUser, TelegramChat, mentions
from tests.support import KNOWLEDGE_DIR, REPO, Chat, UserInbox, open_app

ANNA = FakeUser(5001, "Anna", "de")
BERLIN = ZoneInfo("Europe/Berlin")


class Blackhole:
    """A mail server that accepts connections and never says a word: a check of it waits
    until its timeout (the slow check that is under way when the instance goes down)."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        self.reached.set()

    async def close(self) -> None:
        """From now on the port refuses connections (a check of it ends at once)."""
        if self._server is not None:
            self._server.close()
            for writer in self._writers:
                writer.close()
            await self._server.wait_closed()
            self._server = None


@pytest.fixture
async def blackhole() -> AsyncIterator[Blackhole]:
    hole = Blackhole()
    await hole.start()
    yield hole
    await hole.close()


# The loader checks that every port a guide names is an endpoint of server.yaml, so the repo's
# guides (993, 587, ...) cannot come along with a server on a free port: one small guide does.
PROGRAM = """
program:
  id: testprogramm
  name: Testprogramm
  aliases: [Testprogramm]
  version_hint: Steht im Menü „Hilfe“.
guides:
  - id: testprogramm
    title: Testprogramm
    label: Testprogramm
    source: seed
    steps:
      - text: Schalten Sie die Verschlüsselung ein.
"""
FAQ = """
faq:
  - id: warum
    question: Warum verschlüsseln?
    keywords: [warum]
    answer: Damit niemand mitliest.
"""


def knowledge_dir_checking(tmp_path: Path, port: int) -> Path:
    """A knowledge base whose mail server is 127.0.0.1:`port` (IMAP over TLS)."""
    directory = tmp_path / "knowledge"
    directory.mkdir()
    helpdesk = yaml.safe_load((KNOWLEDGE_DIR / "server.yaml").read_text())["helpdesk"]
    server = {
        "name": "mbox1.belwue.de",
        "host": "mbox1.belwue.de",
        "address": "127.0.0.1",
        "endpoints": [{"protocol": "imap", "port": port, "security": "tls"}],
    }
    (directory / "server.yaml").write_text(
        yaml.safe_dump({"server": server, "helpdesk": helpdesk}, allow_unicode=True)
    )
    (directory / "testprogramm.yaml").write_text(PROGRAM)
    (directory / "faq.yaml").write_text(FAQ)
    return directory


async def checking_app(url: str, knowledge: KnowledgeBase) -> App:
    """An instance as `lotse serve` builds it: a connection check (of `knowledge`'s server,
    waiting up to a minute) and tickets."""
    return await open_app(url, knowledge, tickets=True, check=True, check_timeout=60)


async def checking_service(url: str, knowledge: KnowledgeBase) -> ConversationService:
    return (await checking_app(url, knowledge)).service


async def strand_a_check(url: str, knowledge: KnowledgeBase, hole: Blackhole) -> datetime:
    """Anna asks for a check, which hangs; the instance dies mid-turn (nothing after that
    point of the turn happens). When her message was stored."""
    service = await checking_service(url, knowledge)
    turn = asyncio.create_task(service.handle(Inbound("telegram", "anna", command="pruefen")))
    await asyncio.wait_for(hole.reached.wait(), 15)  # the check is under way
    turn.cancel()
    with suppress(asyncio.CancelledError):
        await turn
    transcript = await service.store.transcript("telegram", "anna")
    await service.close()
    assert [(m.direction, m.text) for m in transcript] == [("in", "/pruefen")]
    return transcript[0].created_at


# --- a turn cut off, answered after the restart -----------------------------------------


async def test_a_check_cut_off_by_a_restart_minutes_ago_is_answered_in_full_and_only_once(
    tmp_path: Path, sqlite_url: str, blackhole: Blackhole
) -> None:
    knowledge = load_knowledge(knowledge_dir_checking(tmp_path, blackhole.port))
    written = await strand_a_check(sqlite_url, knowledge, blackhole)
    await blackhole.close()  # after the restart the check gets its answer at once

    restarted = await checking_service(sqlite_url, knowledge)
    inbox = UserInbox()
    two_minutes_later = written + timedelta(minutes=2)
    assert await answer_stranded(restarted, "telegram", inbox.send, now=lambda: two_minutes_later)
    assert "Verbindungstest für mbox1.belwue.de" in inbox.text("anna")
    assert "nicht erreichbar" in inbox.text("anna")
    assert "Neustart" not in inbox.text("anna")  # the answer itself, no apology needed

    sent = len(inbox.sent["anna"])
    again = await answer_stranded(restarted, "telegram", inbox.send, now=lambda: two_minutes_later)
    assert again == 0
    assert len(inbox.sent["anna"]) == sent, "answered twice"
    transcript = await restarted.store.transcript("telegram", "anna")
    assert [m.direction for m in transcript].count("in") == 1
    assert transcript[-1].direction == "out"
    await restarted.close()


async def test_a_message_cut_off_hours_ago_gets_an_apology_with_its_time_and_the_question(
    tmp_path: Path, sqlite_url: str, blackhole: Blackhole
) -> None:
    knowledge = load_knowledge(knowledge_dir_checking(tmp_path, blackhole.port))
    written = await strand_a_check(sqlite_url, knowledge, blackhole)

    restarted = await checking_service(sqlite_url, knowledge)
    inbox = UserInbox()
    three_hours_later = written + timedelta(hours=3)
    assert await answer_stranded(restarted, "telegram", inbox.send, now=lambda: three_hours_later)
    local = written.astimezone(BERLIN)
    if local.date() == three_hours_later.astimezone(BERLIN).date():
        named = f"Ihre Nachricht von {local:%H:%M} Uhr ist"
    else:  # written before midnight
        named = f"Ihre Nachricht von gestern, {local:%H:%M} Uhr, ist"
    text = inbox.text("anna")
    assert text.startswith(f"Entschuldigung, {named} bei einem Neustart liegen geblieben.")
    assert "Welches Mailprogramm benutzen Sie?" in text  # where she stands, to go on from
    assert "Verbindungstest" not in text  # a three hours old check is not run again
    again = await answer_stranded(restarted, "telegram", inbox.send, now=lambda: three_hours_later)
    assert again == 0
    assert inbox.text("anna") == text
    await restarted.close()


async def test_a_message_cut_off_more_than_a_day_ago_is_left_alone(
    tmp_path: Path, sqlite_url: str, blackhole: Blackhole
) -> None:
    knowledge = load_knowledge(knowledge_dir_checking(tmp_path, blackhole.port))
    written = await strand_a_check(sqlite_url, knowledge, blackhole)

    restarted = await checking_service(sqlite_url, knowledge)
    inbox = UserInbox()
    two_days_later = written + timedelta(days=2)
    assert not await answer_stranded(restarted, "telegram", inbox.send, now=lambda: two_days_later)
    assert inbox.sent == {}
    assert [m.direction for m in await restarted.store.transcript("telegram", "anna")] == ["in"]
    await restarted.close()


async def test_answered_users_blocked_users_and_other_channels_get_nothing_after_a_restart(
    sqlite_url: str, knowledge: KnowledgeBase
) -> None:
    service = await checking_service(sqlite_url, knowledge)
    await Chat(service, "bert", "telegram").say("Thunderbird 60")  # answered before the restart
    await service.store.begin_turn("telegram", "carla", "de", "Thunderbird 60")  # cut off
    await service.store.mark_blocked("telegram", "carla")  # and she blocked the bot since
    await service.store.begin_turn("console", "dora", "de", "Thunderbird 60")  # another channel
    await service.store.begin_turn("telegram", "emil", "de", "Thunderbird 60")  # cut off
    inbox = UserInbox()
    assert await answer_stranded(service, "telegram", inbox.send) == 1
    assert list(inbox.sent) == ["emil"]
    assert "Schritt 1 von 5" in inbox.text("emil")
    assert [m.direction for m in await service.store.transcript("console", "dora")] == ["in"]
    await service.close()


async def test_a_user_talking_to_an_agent_gets_the_apology_but_no_question_from_lotse(
    sqlite_url: str, knowledge: KnowledgeBase
) -> None:
    app = await checking_app(sqlite_url, knowledge)
    service = app.service
    anna = Chat(service, "anna", "telegram")
    await anna.command("mensch")
    app.tickets.register_user_sender("telegram", UserInbox().send)
    await app.tickets.take(1, "Agentin Berta")  # Lotse is silent while she has it
    await service.store.begin_turn("telegram", "anna", "de", "Geht es jetzt?")  # cut off
    written = (await service.store.transcript("telegram", "anna"))[-1].created_at
    inbox = UserInbox()
    later = written + timedelta(hours=1)
    assert await answer_stranded(service, "telegram", inbox.send, now=lambda: later) == 1
    [reply] = inbox.sent["anna"]
    assert "bei einem Neustart liegen geblieben" in reply.text
    assert reply.options == ()
    assert "Mailprogramm" not in reply.text
    await service.close()


async def test_the_sweep_answers_a_message_an_instance_that_never_came_back_left_not_a_new_one(
    sqlite_url: str, knowledge: KnowledgeBase
) -> None:
    app = await checking_app(sqlite_url, knowledge)
    service = app.service
    inbox = UserInbox()
    app.tickets.register_user_sender("telegram", inbox.send)  # Telegram runs here
    await service.store.begin_turn("telegram", "anna", "de", "Thunderbird 60")  # cut off elsewhere
    written = (await service.store.transcript("telegram", "anna"))[-1].created_at
    clock = written + timedelta(seconds=30)
    runner = JobRunner(service.store, [sweep_job(app, "telegram", now=lambda: clock)])
    assert await runner.run_due() == ["stranded:telegram"]
    await runner.stop()
    assert inbox.sent == {}  # her turn may still be under way on that instance

    clock = written + timedelta(minutes=3)
    await sweep_job(app, "telegram", now=lambda: clock).run()
    assert "Schritt 1 von 5" in inbox.text("anna")
    await service.close()


# --- several instances on PostgreSQL ------------------------------------------------------


@pytest.mark.postgres
async def test_two_instances_starting_together_answer_each_cut_off_message_once(
    postgres_url: str, knowledge: KnowledgeBase
) -> None:
    users = [f"user-{number}" for number in range(12)]
    killed = await checking_service(postgres_url, knowledge)
    for user in users:  # what an instance killed mid-turn leaves: messages, no answers
        await killed.store.begin_turn("telegram", user, "de", "Thunderbird 60")
    await killed.close()

    first = await checking_service(postgres_url, knowledge)
    second = await checking_service(postgres_url, knowledge)
    inboxes = [UserInbox(), UserInbox()]
    counts = await asyncio.gather(
        answer_stranded(first, "telegram", inboxes[0].send),
        answer_stranded(second, "telegram", inboxes[1].send),
    )
    assert sum(counts) == len(users)
    for user in users:
        answers = [inbox.sent[user] for inbox in inboxes if user in inbox.sent]
        assert len(answers) == 1, f"{user} was answered {len(answers)} times"
        assert "Schritt 1 von 5" in "\n".join(reply.text for reply in answers[0])
        transcript = await first.store.transcript("telegram", user)
        assert [m.direction for m in transcript].count("in") == 1
        assert transcript[-1].direction == "out"
    await first.close()
    await second.close()


# --- a real `lotse telegram` killed mid-turn ------------------------------------------------


@asynccontextmanager
async def lotse_telegram(env: dict[str, str], log: Path) -> AsyncIterator[Process]:
    with log.open("ab") as output:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "telegram", cwd=REPO, env=env,
            stdout=output, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def polling_since(api: FakeTelegram, since: int, log: Path) -> None:
    def polling() -> bool:
        methods = [call.method for call in api.calls[since:]]
        return "setMyCommands" in methods and methods[-1] == "getUpdates"

    await api.wait_for(polling, f"the bot to start polling (its log: {log})", within=90)


@pytest.mark.slow
@pytest.mark.parametrize(
    "stop",
    [signal.SIGKILL, signal.SIGTERM],  # gone at once; or after the 8 s the turns get to finish
    ids=["killed", "terminated"],
)
async def test_a_bot_stopped_during_a_slow_check_answers_it_after_the_restart(
    telegram_api: FakeTelegram, tmp_path: Path, blackhole: Blackhole, stop: signal.Signals
) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("LOTSE_")}
    env.update(
        LOTSE_TELEGRAM_TOKEN=telegram_api.token,
        LOTSE_TELEGRAM_BASE_URL=telegram_api.base_url,
        LOTSE_DATABASE_URL=f"sqlite:///{tmp_path / 'lotse.sqlite3'}",
        LOTSE_KNOWLEDGE_DIR=str(knowledge_dir_checking(tmp_path, blackhole.port)),
        LOTSE_CHECK_TIMEOUT="60",
        PTB_TIMEDELTA="true",
    )
    log = tmp_path / "lotse.log"
    anna = TelegramChat(telegram_api, ANNA)
    async with lotse_telegram(env, log) as first:
        await polling_since(telegram_api, 0, log)
        anna.send("/pruefen")
        await asyncio.wait_for(blackhole.reached.wait(), 30)  # the check is under way
        # Telegram has the update confirmed: it will not come again.
        await telegram_api.wait_for(lambda: telegram_api.pending_updates() == 0, "the ack")
        first.send_signal(stop)
        await asyncio.wait_for(first.wait(), 20)
    assert telegram_api.messages_to(ANNA.id) == []
    await blackhole.close()

    calls_before_restart = len(telegram_api.calls)
    async with lotse_telegram(env, log) as second:
        await polling_since(telegram_api, calls_before_restart, log)
        await anna.replies(mentions("Verbindungstest für mbox1.belwue.de"))
        assert "nicht erreichbar" in anna.text
        second.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(second.wait(), 15) == 0
    assert sum("Verbindungstest" in m.text for m in telegram_api.messages_to(ANNA.id)) == 1


# --- a locked database --------------------------------------------------------------------


@contextmanager
def write_lock(url: str) -> Iterator[sqlite3.Connection]:
    """Another process's transaction holding SQLite's write lock until the block ends."""
    connection = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
    finally:
        connection.execute("ROLLBACK")
        connection.close()


async def service_waiting(
    url: str, knowledge: KnowledgeBase, write_deadline: float
) -> ConversationService:
    """A service whose store tries a locked database for up to `write_deadline` seconds."""
    store = await Store.open(url, write_deadline=write_deadline)
    return ConversationService(store, knowledge, LexiconUnderstander(knowledge))


class RetrySignal(logging.Handler):
    """Sets `event` when the store logs that it is trying a transaction again."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.loop = asyncio.get_running_loop()
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "database transaction failed" in record.getMessage():
            self.loop.call_soon_threadsafe(self.event.set)


@contextmanager
def retries_seen() -> Iterator[RetrySignal]:
    handler = RetrySignal()
    logger = logging.getLogger("bot.retry")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


async def test_a_message_that_meets_a_lock_held_past_the_deadline_is_told_it_was_not_stored(
    sqlite_url: str, knowledge: KnowledgeBase
) -> None:
    service = await service_waiting(sqlite_url, knowledge, write_deadline=0.5)
    store = service.store
    anna = Chat(service, "anna", "telegram")
    with write_lock(sqlite_url):
        await anna.say("Thunderbird 60")
    assert anna.text == (
        "Entschuldigung, Ihre Nachricht konnte ich gerade nicht speichern; bitte schicken Sie "
        "sie gleich noch einmal."
    )
    assert await store.transcript("telegram", "anna") == []
    await anna.say("Thunderbird 60")  # sent again once the database is free
    assert "Schritt 1 von 5" in anna.text
    transcript = await store.transcript("telegram", "anna")
    assert (transcript[0].direction, transcript[0].text) == ("in", "Thunderbird 60")
    assert [m.direction for m in transcript].count("in") == 1
    await service.close()


async def test_a_message_that_meets_a_lock_released_within_the_deadline_is_stored_once(
    sqlite_url: str, knowledge: KnowledgeBase
) -> None:
    service = await service_waiting(sqlite_url, knowledge, write_deadline=60)
    store = service.store
    anna = Chat(service, "anna", "telegram")
    await anna.say("Hallo")  # a returning user: her next turn takes the short path
    with retries_seen() as retries:
        with write_lock(sqlite_url):
            turn = asyncio.create_task(anna.say("Thunderbird 60"))
            await asyncio.wait_for(retries.event.wait(), 15)  # it met the lock, and waits
            assert not turn.done()
        await asyncio.wait_for(turn, 15)
    assert "Schritt 1 von 5" in anna.text
    transcript = await store.transcript("telegram", "anna")
    assert [m.text for m in transcript if m.direction == "in"] == ["Hallo", "Thunderbird 60"]
    await service.close()


@pytest.mark.postgres
async def test_on_postgresql_a_lock_timeout_is_waited_out_and_past_the_deadline_told_truthfully(
    postgres_url: str, knowledge: KnowledgeBase
) -> None:
    import asyncpg  # type: ignore[import-untyped]

    dsn = postgres_url.replace("postgresql+asyncpg://", "postgresql://")
    admin = await asyncpg.connect(dsn)
    database = await admin.fetchval("SELECT current_database()")
    # As an operator would set it, so a statement waiting for a lock gives up (SQLSTATE 55P03).
    await admin.execute(f"ALTER DATABASE \"{database}\" SET lock_timeout = '100ms'")
    patient = await service_waiting(postgres_url, knowledge, write_deadline=60)
    hasty = await service_waiting(postgres_url, knowledge, write_deadline=0.5)
    anna, bert = Chat(patient, "anna", "telegram"), Chat(hasty, "bert", "telegram")
    await anna.say("Hallo")  # a returning user: her next turn takes the one-statement path

    async with admin.transaction():  # another session keeps the transcript locked
        await admin.execute("LOCK TABLE messages IN EXCLUSIVE MODE")
        await bert.say("Thunderbird 60")
        assert bert.text.startswith("Entschuldigung, Ihre Nachricht konnte ich gerade nicht")
        with retries_seen() as retries:
            turn = asyncio.create_task(anna.say("Thunderbird 60"))
            await asyncio.wait_for(retries.event.wait(), 15)  # it met the lock, and waits
            assert not turn.done()
    await asyncio.wait_for(turn, 15)
    assert "Schritt 1 von 5" in anna.text
    transcript = await patient.store.transcript("telegram", "anna")
    assert [m.text for m in transcript if m.direction == "in"] == ["Hallo", "Thunderbird 60"]
    assert await hasty.store.transcript("telegram", "bert") == []
    await admin.close()
    await patient.close()
    await hasty.close()
