"""The Matrix channel against a real Synapse (`tests/servers/synapse.py`).

The bot runs as `python -m bot.cli matrix`, as in production, so restarting it means a new
process on the same store directory and database; tests that never restart it run `serve` in
the test's event loop instead, which saves the process start. Test users are real matrix-nio
clients with encryption and their own stores; they trust the bot's device before they write in
encrypted rooms, as a careful user would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import plistlib
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from nio import (  # type: ignore[import-untyped]
    DownloadResponse,
    MegolmEvent,
    RoomEncryptedFile,
)

# matrix-nio ships no type information; see bot/channels/matrix.py.
from nio.crypto import decrypt_attachment  # type: ignore[import-untyped]
from pydantic import SecretStr

from bot.config import Settings
from bot.conversation import ConversationService
from bot.engine.decision import Reply
from bot.storage.store import Store
from bot.turns import Inbound
from tests.matrix_user import GREETING, MatrixUser, matrix_user
from tests.servers.synapse import MatrixAccount, SynapseServer
from tests.support import REPO, serve_matrix

pytestmark = pytest.mark.slow


# --- the bot as a process --------------------------------------------------------------------


@dataclass
class BotProcess:
    """`lotse matrix` with its own store directory and SQLite database."""

    account: MatrixAccount
    homeserver: str
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.directory / "bot.log"

    def start(self, *, allowed_rooms: str = "") -> None:
        env = dict(
            os.environ,
            LOTSE_MATRIX_HOMESERVER=self.homeserver,
            LOTSE_MATRIX_USER=self.account.user_id,
            LOTSE_MATRIX_PASSWORD=self.account.password,
            LOTSE_MATRIX_STORE_DIR=str(self.directory / "store"),
            LOTSE_DATABASE_URL=f"sqlite:///{self.directory / 'lotse.sqlite3'}",
            LOTSE_NLU="lexicon",
            LOTSE_LOCALE="de",
            LOTSE_MATRIX_ALLOWED_ROOMS=allowed_rooms,
        )
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "matrix"],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> int | None:
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                return process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        return process.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""


class InProcessBot(logging.Handler):
    """What `lotse matrix` runs (`serve`), as a task in the test's event loop.

    Saves the process start (about 3 s of imports) where a test does not restart the bot.
    """

    def __init__(self, account: MatrixAccount, homeserver: str, directory: Path) -> None:
        super().__init__(logging.WARNING)
        self.account = account
        self.homeserver = homeserver
        self.directory = directory
        self.task: asyncio.Task[None] | None = None
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(self.format(record))

    def start(self, *, allowed_rooms: str = "", access_token: str | None = None) -> None:
        settings = Settings(
            _env_file=None,
            matrix_homeserver=self.homeserver,
            matrix_user=self.account.user_id,
            matrix_password=None if access_token else SecretStr(self.account.password),
            matrix_access_token=SecretStr(access_token) if access_token else None,
            matrix_store_dir=self.directory / "store",
            matrix_allowed_rooms=allowed_rooms,
            database_url=f"sqlite:///{self.directory / 'lotse.sqlite3'}",
            nlu="lexicon",
            locale="de",
        )
        logging.getLogger().addHandler(self)
        self.task = asyncio.ensure_future(serve_matrix(settings))

    async def stop(self) -> None:
        logging.getLogger().removeHandler(self)
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    def log(self) -> str:
        if self.task is not None and self.task.done() and not self.task.cancelled():
            error = self.task.exception()
            if error is not None:
                self.records.append(f"serve() ended with {error!r}")
        return "\n".join(self.records)[-4000:]


Bot = BotProcess | InProcessBot


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def bot(synapse_server: SynapseServer, tmp_path: Path) -> Iterator[BotProcess]:
    process = BotProcess(synapse_server.new_account("lotse"), synapse_server.url, tmp_path / "bot")
    process.directory.mkdir()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
async def bot_in_process(
    synapse_server: SynapseServer, tmp_path: Path
) -> AsyncIterator[InProcessBot]:
    directory = tmp_path / "bot"
    directory.mkdir()
    bot = InProcessBot(synapse_server.new_account("lotse"), synapse_server.url, directory)
    try:
        yield bot
    finally:
        await bot.stop()


@pytest.fixture
async def anna(synapse_server: SynapseServer, tmp_path: Path) -> AsyncIterator[MatrixUser]:
    user = await matrix_user(synapse_server, tmp_path, "anna")
    try:
        yield user
    finally:
        await user.close()


async def _walk_thunderbird(user: MatrixUser, room: str, bot: Bot) -> None:
    """From the greeting to the server settings, answering by number and by label."""
    try:
        await user.ask(room, "Thunderbird 60", "Schritt 1 von 5")
        await user.ask(room, "1", "Schritt 2 von 5")
        await user.ask(room, "Erledigt – weiter", "Schritt 3 von 5")
        await user.ask(room, "1", "Schritt 4 von 5")
        await user.ask(room, "1", "Schritt 5 von 5")
        finished = await user.ask(room, "1", "Was möchten Sie als Nächstes tun?")
    except AssertionError as error:
        raise AssertionError(f"{error}\nbot log:\n{bot.log()}") from None
    assert any("Port 993 mit SSL/TLS" in body for body in finished)


async def _greeted(user: MatrixUser, bot: Bot, room: str) -> None:
    try:
        await user.until(lambda: any(GREETING in body for body in user.bodies()), "the greeting")
    except AssertionError as error:
        raise AssertionError(f"{error}\nbot log:\n{bot.log()}") from None
    assert all(item.room_id == room for item in user.received)


# --- tests -----------------------------------------------------------------------------------


async def test_a_user_who_invites_the_bot_to_a_direct_chat_is_greeted_and_walks_a_whole_guide(
    bot: BotProcess, anna: MatrixUser
) -> None:
    bot.start()
    started = time.monotonic()
    room = await anna.open_direct_chat(bot.account.user_id, encrypted=False)
    await _greeted(anna, bot, room)
    print(f"\ninvite to greeting (bot process start included): {time.monotonic() - started:.2f} s")

    greeting = next(item for item in anna.received if GREETING in item.body)
    assert greeting.event.source["content"]["msgtype"] == "m.notice"
    assert "1. Microsoft Outlook\n2. Mozilla Thunderbird" in greeting.body
    assert "<ol><li>Microsoft Outlook</li><li>Mozilla Thunderbird</li>" in (
        greeting.event.formatted_body
    )
    began = time.monotonic()
    await _walk_thunderbird(anna, room, bot)
    print(
        f"6 answers in an unencrypted room: {(time.monotonic() - began) / 6:.2f} s per round trip"
    )


async def test_in_an_encrypted_room_the_guide_survives_a_restart_of_the_bot_and_its_downtime(
    synapse_server: SynapseServer, bot: BotProcess, anna: MatrixUser
) -> None:
    bot.start()
    room = await anna.open_direct_chat(bot.account.user_id, encrypted=True)
    await _greeted(anna, bot, room)
    assert anna.client.rooms[room].encrypted
    assert all(item.event.decrypted for item in anna.received)  # they came encrypted
    devices = synapse_server.devices(bot.account.user_id)
    keys = _device_keys(synapse_server, anna, bot.account.user_id)
    assert len(devices) == 1

    began = time.monotonic()
    await anna.ask(room, "Thunderbird 60", "Schritt 1 von 5")
    print(f"\nencrypted round trip: {time.monotonic() - began:.2f} s")
    read = await anna.say(room, "1")
    await anna.until(lambda: any("Schritt 2 von 5" in body for body in anna.bodies()), "step 2")
    await anna.until(
        lambda: _read_up_to(anna, room, bot.account.user_id) == read, "the bot's read receipt"
    )

    assert bot.stop() == 0  # SIGTERM: a clean stop
    start = len(anna.received)
    await anna.say(room, "1")  # written while the bot is down
    bot.start()
    await anna.until(lambda: any("Schritt 3 von 5" in b for b in anna.bodies(start)), "step 3")
    await anna.ask(room, "1", "Schritt 4 von 5")

    assert synapse_server.devices(bot.account.user_id) == devices  # no new device ...
    assert _device_keys(synapse_server, anna, bot.account.user_id) == keys  # ... same keys
    answers = anna.bodies(start)
    assert sum("Schritt 3 von 5" in body for body in answers) == 1  # nothing answered twice
    assert not any(isinstance(item.event, MegolmEvent) for item in anna.received)


async def test_after_the_homeserver_restarts_the_bot_reconnects_and_answers_the_next_message(
    synapse_server: SynapseServer, bot: BotProcess, anna: MatrixUser
) -> None:
    bot.start()
    room = await anna.open_direct_chat(bot.account.user_id, encrypted=True)
    await _greeted(anna, bot, room)

    await asyncio.to_thread(synapse_server.restart)
    print(f"\nSynapse restart: {synapse_server.start_seconds:.2f} s")
    began = time.monotonic()
    try:
        await anna.ask(room, "Thunderbird 60", "Schritt 1 von 5")
    except AssertionError as error:
        raise AssertionError(f"{error}\nbot log:\n{bot.log()}") from None
    print(f"first answer after the restart: {time.monotonic() - began:.2f} s")
    assert bot.process is not None and bot.process.poll() is None
    assert "homeserver unreachable" in bot.log()  # it did lose the connection
    assert "Traceback" not in bot.log()


async def test_messages_from_before_the_bots_first_start_are_not_answered(
    bot_in_process: InProcessBot, anna: MatrixUser
) -> None:
    bot = bot_in_process
    room = await anna.open_direct_chat(bot.account.user_id, encrypted=False)
    await anna.say(room, "Thunderbird")  # the bot has never run: this is backlog
    bot.start()
    await _greeted(anna, bot, room)
    await anna.ask(room, "Apple Mail", "Welche")  # the next message is answered
    assert not any("Thunderbird (60.3.1)" in body for body in anna.bodies())


async def test_rate_limited_replies_are_sent_after_the_wait_the_homeserver_asks_for(
    synapse_server: SynapseServer, bot_in_process: InProcessBot, anna: MatrixUser
) -> None:
    bot = bot_in_process
    # One message per second, no burst: the greeting's second reply already meets a 429.
    synapse_server.override_ratelimit(bot.account.user_id, 1, 1)
    bot.start()
    room = await anna.open_direct_chat(bot.account.user_id, encrypted=False)
    await _greeted(anna, bot, room)
    answers = await anna.ask(room, "Thunderbird 60", "Schritt 1 von 5")
    assert answers[0].startswith("Gut, dann zeige ich Ihnen die Anleitung")
    assert "Got 429 response" in bot.log()  # nio logs each wait; the replies came anyway


async def test_group_rooms_are_joined_and_answered_only_when_configured(
    synapse_server: SynapseServer, bot_in_process: InProcessBot, anna: MatrixUser
) -> None:
    bot = bot_in_process
    bert = synapse_server.new_account("bert").user_id  # a third member makes it a group
    listed = (await anna.client.room_create(invite=[bert])).room_id
    unlisted = (await anna.client.room_create(invite=[bert])).room_id
    bot.start(allowed_rooms=f"#elsewhere:localhost, {listed}")
    for room in (listed, unlisted):
        await anna.client.room_invite(room, bot.account.user_id)

    def member(room: str) -> bool:
        users = anna.client.rooms[room].users if room in anna.client.rooms else {}
        return bot.account.user_id in users and bot.account.user_id not in (
            anna.client.rooms[room].invited_users
        )

    def gone(room: str) -> bool:
        return room in anna.client.rooms and bot.account.user_id not in (
            anna.client.rooms[room].users
        )

    await anna.until(lambda: member(listed) and gone(unlisted), "the bot to join and decline")
    assert anna.received == []  # no greeting in groups: people there did not ask for the bot
    answers = await anna.ask(listed, "Thunderbird 60", "Schritt 1 von 5")
    assert all(item.room_id == listed for item in anna.received), answers


async def test_an_access_token_works_instead_of_a_password_and_keeps_its_device(
    synapse_server: SynapseServer, bot_in_process: InProcessBot, anna: MatrixUser
) -> None:
    bot = bot_in_process
    login = synapse_server.request(
        "POST",
        "/_matrix/client/v3/login",
        {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": bot.account.user_id},
            "password": bot.account.password,
        },
    )
    bot.start(access_token=login["access_token"])
    room = await anna.open_direct_chat(bot.account.user_id, encrypted=True)
    await _greeted(anna, bot, room)
    assert synapse_server.devices(bot.account.user_id) == [login["device_id"]]


async def test_a_message_whose_answer_fails_is_logged_and_the_next_one_is_answered(
    bot_in_process: InProcessBot, anna: MatrixUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    bot = bot_in_process
    handle = ConversationService.handle

    async def failing_on_kaputt(self: ConversationService, inbound: Inbound) -> list[Reply]:
        if inbound.text == "kaputt":
            raise RuntimeError("simulated failure")
        return await handle(self, inbound)

    monkeypatch.setattr(ConversationService, "handle", failing_on_kaputt)
    bot.start()
    room = await anna.open_direct_chat(bot.account.user_id, encrypted=False)
    await _greeted(anna, bot, room)
    await anna.say(room, "kaputt")
    await anna.ask(room, "Thunderbird 60", "Schritt 1 von 5")
    assert "simulated failure" in bot.log()


# --- helpers -----------------------------------------------------------------------------------


def _device_keys(server: SynapseServer, user: MatrixUser, user_id: str) -> dict[str, str]:
    """Device id -> ed25519 key, as any user of the homeserver sees them (`/keys/query`)."""
    response = server.request(
        "POST",
        "/_matrix/client/v3/keys/query",
        {"device_keys": {user_id: []}},
        token=user.client.access_token,
    )
    devices = response["device_keys"][user_id]
    return {
        device_id: device["keys"][f"ed25519:{device_id}"] for device_id, device in devices.items()
    }


def _read_up_to(user: MatrixUser, room_id: str, reader: str) -> str | None:
    receipt = user.client.rooms[room_id].read_receipts.get(reader)
    return None if receipt is None else str(receipt.event_id)


async def test_in_an_encrypted_room_the_configuration_profile_arrives_as_an_encrypted_file(
    bot_in_process: InProcessBot, anna: MatrixUser
) -> None:
    bot = bot_in_process
    bot.start()
    room = await anna.open_direct_chat(bot.account.user_id, encrypted=True)
    await _greeted(anna, bot, room)
    await anna.ask(room, "iPhone mit iOS 12", "Schritt 1 von 5")
    await anna.ask(room, "Profil installieren", "Für welche E-Mail-Adresse?")
    await anna.ask(room, "erika.muster@uni-beispiel.de", "So installieren Sie es")
    await anna.until(
        lambda: any(isinstance(item.event, RoomEncryptedFile) for item in anna.received),
        "the profile file",
    )
    event = next(i.event for i in anna.received if isinstance(i.event, RoomEncryptedFile))
    assert event.body == "E-Mail-erika.muster.mobileconfig"
    downloaded = await anna.client.download(event.url)
    assert isinstance(downloaded, DownloadResponse), downloaded
    profile = decrypt_attachment(downloaded.body, event.key["k"], event.hashes["sha256"], event.iv)
    assert plistlib.loads(profile)["PayloadContent"][0]["EmailAddress"] == (
        "erika.muster@uni-beispiel.de"
    )


async def test_an_unknown_command_and_a_password_in_a_command_are_handled_as_on_telegram(
    bot: BotProcess, anna: MatrixUser
) -> None:
    bot.start()
    room = await anna.open_direct_chat(bot.account.user_id, encrypted=False)
    await _greeted(anna, bot, room)
    try:
        await anna.ask(room, "!foo", "Diesen Befehl kenne ich nicht")
        await anna.ask(room, "!hilfe mein Passwort ist Sommer2024!", "niemals Ihr Passwort")
    except AssertionError as error:
        raise AssertionError(f"{error}\nbot log:\n{bot.log()}") from None
    store = await Store.open(f"sqlite:///{bot.directory / 'lotse.sqlite3'}")
    try:
        stored = [m.text for m in await store.transcript("matrix", anna.account.user_id)]
    finally:
        await store.close()
    assert "/foo" in stored
    assert "/hilfe mein Passwort ist [Passwort entfernt]" in stored
    assert "Sommer2024" not in "\n".join(stored)
