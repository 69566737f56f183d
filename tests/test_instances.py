"""Several instances on one PostgreSQL: one user's turns never interleave, migrations at start
are safe when instances start together, and two `lotse serve` processes in Telegram webhook
mode answer every message of a user once and in order."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from asyncio.subprocess import Process
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from bot.conversation import ConversationService
from bot.engine.state import ConversationState
from bot.knowledge.base import KnowledgeBase
from bot.storage.postgres import PostgresBackend
from bot.storage.store import Store, StoredMessage
from tests.servers.postgres import running_statement, waiting_for_a_lock
from tests.servers.telegram_api import FakeTelegram, FakeUser, mentions
from tests.support import REPO, Chat, free_port, open_service, wait_until

pytestmark = pytest.mark.postgres

STEP = re.compile(r"Schritt (\d) von 5")
SECRET = "zwei-instanzen_42"
ANNA = FakeUser(4001, "Anna", "de")


def turns_of(transcript: list[StoredMessage]) -> list[tuple[str, list[str]]]:
    """(what the user wrote, the bot's replies to it); fails when turns interleave, i.e. a
    message of the user comes before the previous one was answered."""
    turns: list[tuple[str, list[str]]] = []
    for message in transcript:
        if message.direction == "in":
            assert not turns or turns[-1][1], f"interleaved turns: {[m.text for m in transcript]}"
            turns.append((message.text, []))
        else:
            assert turns, "a reply before any message"
            turns[-1][1].append(message.text)
    assert turns and turns[-1][1], "the last message was not answered"
    return turns


def assert_steps_follow_the_messages(turns: list[tuple[str, list[str]]], start: int) -> int:
    """Each "weiter" moved one step on, each "zurück" one back, from the step before: so
    every turn decided on the state the previous turn saved. The last step."""
    step = start
    for text, replies in turns:
        match = STEP.search("\n".join(replies))
        assert match, f"no step in the answer to {text!r}: {replies}"
        step += {"weiter": 1, "zurück": -1}[text]
        assert int(match.group(1)) == step, [(t, STEP.findall("".join(r))) for t, r in turns]
    return step


# --- in one process, two stores (as two instances have) ------------------------------------


async def test_a_turn_lock_holds_the_same_user_on_another_instance_and_no_one_else(
    postgres_url: str,
) -> None:
    first, second = await Store.open(postgres_url), await Store.open(postgres_url)
    entered: list[str] = []

    async def take_turn(store: Store, user: str) -> None:
        async with store.turn("telegram", user):
            entered.append(user)

    async with first.turn("telegram", "anna"):
        same_user = asyncio.create_task(take_turn(second, "anna"))
        await take_turn(second, "bert")  # another user goes ahead at once
        await wait_until(lambda: first.run(waiting_for_a_lock), "anna's turn to wait for her lock")
        assert entered == ["bert"]
        assert first.turns_in_flight == 1
    await asyncio.wait_for(same_user, 5)
    assert entered == ["bert", "anna"]
    assert await first.drain(0.1)
    await first.close()
    await second.close()


async def takes_the_turn_at_once(store: Store, user: str) -> bool:
    """Whether `store` gets `user`'s turn within a second (nobody else holds it)."""
    try:
        async with asyncio.timeout(1):
            async with store.turn("telegram", user):
                return True
    except TimeoutError:
        return False


async def test_a_turn_ended_by_an_error_or_a_cancellation_leaves_the_users_lock_free(
    postgres_url: str,
) -> None:
    first, second = await Store.open(postgres_url), await Store.open(postgres_url)

    with pytest.raises(ValueError):
        async with first.turn("telegram", "anna"):
            raise ValueError("the turn failed")
    assert await takes_the_turn_at_once(second, "anna")

    # Cancelled while waiting for the lock (a statement under way on the turn's connection):
    # the lock must not be granted afterwards and stay with a pooled connection.
    async with second.turn("telegram", "anna"):
        waiting = asyncio.create_task(take_turn_and_wait(first, "anna"))
        await wait_until(lambda: second.run(waiting_for_a_lock), "the turn to wait for the lock")
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
    assert await takes_the_turn_at_once(second, "anna")

    # Cancelled in the middle of the turn, while it waits on the database.
    started = asyncio.Event()
    slow_statement = "SELECT pg_sleep(5)"

    async def slow_turn() -> None:
        async with first.turn("telegram", "bert"):
            started.set()
            await first.run(lambda conn: conn.exec_driver_sql(slow_statement))

    slow = asyncio.create_task(slow_turn())
    await started.wait()
    await wait_until(
        lambda: second.run(running_statement, slow_statement), "the turn's slow statement"
    )
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow
    assert await takes_the_turn_at_once(second, "bert")
    assert first.turns_in_flight == 0

    # Many more turns than the pool has connections: each gives its lock back.
    for number in range(PostgresBackend.TURN_POOL_SIZE * 3):
        async with first.turn("telegram", f"user-{number}"):
            start = await first.begin_turn("telegram", f"user-{number}", "de", "Hallo")
            await first.finish_turn(start, {"step": 1}, None, ["Antwort"])
    for number in range(PostgresBackend.TURN_POOL_SIZE * 3):
        assert await takes_the_turn_at_once(second, f"user-{number}")
    await first.close()
    await second.close()


async def test_when_every_turn_connection_is_busy_a_message_is_still_stored_and_answered(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Term start: more users at once than one instance has turn connections. The turn after
    # them must not fail (and lose the message); it goes ahead without the per-user lock.
    monkeypatch.setattr(PostgresBackend, "TURN_POOL_SIZE", 1)
    monkeypatch.setattr(PostgresBackend, "TURN_POOL_TIMEOUT", 0.2)
    store = await Store.open(postgres_url)
    try:
        # Anna's turn holds the only turn connection while Bert's runs.
        async with store.turn("telegram", "anna"), store.turn("telegram", "bert"):
            start = await store.begin_turn("telegram", "bert", "de", "Hallo")
            await store.finish_turn(start, {"step": 1}, None, ["Antwort"])
        assert [m.text for m in await store.transcript("telegram", "bert")] == [
            "Hallo",
            "Antwort",
        ]
        assert await takes_the_turn_at_once(store, "anna")
    finally:
        await store.close()


async def take_turn_and_wait(store: Store, user: str) -> None:
    async with store.turn("telegram", user):
        await asyncio.sleep(60)


async def test_messages_of_one_user_at_two_instances_at_once_are_answered_one_after_another(
    postgres_url: str, knowledge: KnowledgeBase
) -> None:
    services: list[ConversationService] = [
        await open_service(postgres_url, knowledge),
        await open_service(postgres_url, knowledge),
    ]
    at_a, at_b = (Chat(service, user="anna") for service in services)
    for text in ("Thunderbird 60", "weiter", "weiter"):
        await at_a.say(text)
    assert "Schritt 3 von 5" in at_a.text

    together = ["weiter", "zurück", "zurück", "weiter", "weiter", "zurück"]
    chats = [at_a, at_b] * 3
    await asyncio.gather(*(chat.say(text) for chat, text in zip(chats, together, strict=True)))

    transcript = await services[0].store.transcript("test", "anna")
    turns = turns_of(transcript)
    assert [text for text, _ in turns[:3]] == ["Thunderbird 60", "weiter", "weiter"]
    assert sorted(text for text, _ in turns[3:]) == sorted(together)  # each once
    assert assert_steps_follow_the_messages(turns[3:], start=3) == 3
    state = await at_b.state()
    assert (state.guide, state.step) == ("thunderbird", 2)
    for service in services:
        await service.close()


async def test_instances_starting_together_migrate_the_database_once(postgres_url: str) -> None:
    stores = await asyncio.gather(*(Store.open(postgres_url) for _ in range(3)))
    versions = await stores[0].run(
        lambda conn: conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
    )
    assert len(versions) == 1
    for store in stores:
        await store.close()


# --- two `lotse serve` processes -------------------------------------------------------------


@asynccontextmanager
async def lotse_serve(
    api: FakeTelegram, database_url: str, log: Path
) -> AsyncIterator[tuple[Process, str, int]]:
    """A `lotse serve` process in webhook mode; (process, webhook URL, HTTP port)."""
    webhook_port, http_port = free_port(), free_port()
    webhook = f"http://127.0.0.1:{webhook_port}/telegram-hook"
    env = {key: value for key, value in os.environ.items() if not key.startswith("LOTSE_")}
    env.update(
        LOTSE_DATABASE_URL=database_url,
        LOTSE_TELEGRAM_TOKEN=api.token,
        LOTSE_TELEGRAM_BASE_URL=api.base_url,
        LOTSE_TELEGRAM_WEBHOOK_URL=webhook,
        LOTSE_TELEGRAM_WEBHOOK_SECRET=SECRET,
        LOTSE_TELEGRAM_WEBHOOK_PORT=str(webhook_port),
        LOTSE_HTTP_PORT=str(http_port),
        LOTSE_LOG_FORMAT="json",
    )
    with log.open("ab") as output:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "serve",
            cwd=REPO, env=env, stdout=output, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield process, webhook, http_port
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 20)
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()


async def wait_healthy(http: aiohttp.ClientSession, port: int, log: Path) -> None:

    async def healthy() -> bool:
        try:
            async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                return response.status == 200
        except aiohttp.ClientConnectorError:
            return False

    await wait_until(healthy, f"/healthz to say healthy (see the log {log})", within=60, every=0.1)


async def post(http: aiohttp.ClientSession, url: str, api: FakeTelegram, text: str) -> None:
    update = api.message_update(ANNA, text)
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    async with http.post(url, json=update, headers=headers) as response:
        assert response.status == 200


@pytest.mark.slow
async def test_two_serve_processes_answer_one_users_messages_once_and_in_order(
    telegram_api: FakeTelegram, postgres_url: str, tmp_path: Path
) -> None:
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(aiohttp.ClientSession())
        instances = [
            await stack.enter_async_context(
                lotse_serve(telegram_api, postgres_url, tmp_path / f"serve-{n}.log")
            )
            for n in (1, 2)
        ]
        for n, (_process, _url, port) in enumerate(instances, 1):
            await wait_healthy(http, port, tmp_path / f"serve-{n}.log")
        first, second = (url for _process, url, _port in instances)
        store = await Store.open(postgres_url, migrate=False)
        stack.push_async_callback(store.close)

        async def answered(count: int, within: float = 15) -> list[StoredMessage]:
            transcript: list[StoredMessage] = []

            async def stored() -> list[StoredMessage] | None:
                transcript[:] = await store.transcript("telegram", str(ANNA.id))
                ins = sum(message.direction == "in" for message in transcript)
                done = ins >= count and transcript[-1].direction == "out"
                return list(transcript) if done else None

            found: list[StoredMessage] = await wait_until(
                stored,
                lambda: f"{count} answered messages: {[m.text[:40] for m in transcript]}",
                within=within,
            )
            return found

        for count, text in enumerate(("Thunderbird 60", "weiter", "weiter"), 1):
            await post(http, first if count % 2 else second, telegram_api, text)
            await answered(count)
        # The reply is saved before it is sent: wait for it at the Bot API too.
        await telegram_api.wait_for(
            lambda: mentions("Schritt 3 von 5")(telegram_api.messages_to(ANNA.id)), "step 3"
        )

        # Two on, two back from step 3 of 5: in any order they meet, the guide neither runs
        # past its last step nor before its first (three "weiter" first would).
        together = ["weiter", "zurück", "zurück", "weiter"]
        await asyncio.gather(
            *(
                post(http, url, telegram_api, text)
                for url, text in zip([first, second] * 2, together, strict=True)
            )
        )
        transcript = await answered(7, within=30)
        saved = await store.conversation("telegram", str(ANNA.id))
        for process, _url, _port in instances:
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), 20) == 0

    turns = turns_of(transcript)
    assert [text for text, _ in turns[:3]] == ["Thunderbird 60", "weiter", "weiter"]
    assert sorted(text for text, _ in turns[3:]) == sorted(together)  # each once
    assert assert_steps_follow_the_messages(turns[3:], start=3) == 3
    # Every reply reached the user once (one message per reply here).
    assert len(telegram_api.messages_to(ANNA.id)) == sum(len(r) for _, r in turns)
    assert saved is not None and saved.state is not None
    state = ConversationState.from_json(saved.state)
    assert (state.guide, state.step) == ("thunderbird", 2)
