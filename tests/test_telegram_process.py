"""`lotse telegram` as a real process against the fake Bot API server: killed and restarted
mid-guide with long polling, and in webhook mode with Telegram's secret token."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from asyncio.subprocess import Process
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.cli import run_channel
from bot.config import Settings
from tests.servers.telegram_api import FakeTelegram, FakeUser, TelegramChat, mentions
from tests.support import REPO, free_port, wait_until

pytestmark = pytest.mark.slow

ANNA = FakeUser(2001, "Anna", "de")
BERT = FakeUser(2002, "Bert", "de")


def _environment(api: FakeTelegram, database: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("LOTSE_")}
    env.update(
        LOTSE_TELEGRAM_TOKEN=api.token,
        LOTSE_TELEGRAM_BASE_URL=api.base_url,
        LOTSE_DATABASE_URL=f"sqlite:///{database}",
        PTB_TIMEDELTA="true",
        **extra,
    )
    return env


async def exit_code(process: Process, within: float = 15) -> int:
    """The process's exit code, awaited: the fake server in this event loop has to answer the
    bot's last requests while it shuts down."""
    return await asyncio.wait_for(process.wait(), within)


@asynccontextmanager
async def lotse_telegram(env: dict[str, str], log: Path) -> AsyncIterator[Process]:
    """`python -m bot.cli telegram`; stopped with SIGTERM (or killed) when the block ends."""
    with log.open("ab") as output:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot.cli",
            "telegram",
            cwd=REPO,
            env=env,
            stdout=output,
            stderr=asyncio.subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await exit_code(process)
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()


async def _wait_until_polling(api: FakeTelegram, since: int, log: Path) -> None:
    """Started: the command menu is set and the bot asks for updates."""

    def polling() -> bool:
        methods = [call.method for call in api.calls[since:]]
        return "setMyCommands" in methods and methods[-1] == "getUpdates"

    await api.wait_for(polling, f"the bot to start polling (its log: {log})", within=30)


async def post_update(
    http: aiohttp.ClientSession, url: str, update: dict[str, Any], headers: dict[str, str]
) -> int:
    """POST an update as Telegram does; the HTTP status. PTB calls setWebhook before its
    listener is up, so (like Telegram) try again while the connection is refused."""

    async def post() -> int | None:
        try:
            async with http.post(url, json=update, headers=headers) as response:
                return response.status
        except aiohttp.ClientConnectorError:
            return None

    status: int = await wait_until(post, f"something to listen on {url}")
    return status


async def test_a_restarted_bot_process_continues_the_guide_and_answers_what_came_meanwhile(
    telegram_api: FakeTelegram, tmp_path: Path
) -> None:
    env = _environment(telegram_api, tmp_path / "lotse.sqlite3")
    log = tmp_path / "lotse.log"
    anna = TelegramChat(telegram_api, ANNA)

    async with lotse_telegram(env, log) as first:
        await _wait_until_polling(telegram_api, 0, log)
        await anna.say("/start")
        await anna.tap("Mozilla Thunderbird")
        await anna.tap("Thunderbird 60")  # the version: the seed's guide
        await anna.tap("Erledigt – weiter")
        assert "Schritt 2 von 5" in anna.text
        first.kill()  # no goodbye: as if the machine went down
        await exit_code(first)

    anna.press("Erledigt – weiter")  # tapped while the bot is down
    calls_before_restart = len(telegram_api.calls)
    async with lotse_telegram(env, log) as second:
        await _wait_until_polling(telegram_api, calls_before_restart, log)
        await anna.replies()
        assert "Mozilla Thunderbird (60.3.1) – Schritt 3 von 5" in anna.text
        await anna.say("weiter")
        assert "Schritt 4 von 5" in anna.text
        await anna.say("/start")
        assert "Willkommen zurück" in anna.text
        assert "Schritt 4 von 5" in anna.text
        second.send_signal(signal.SIGTERM)
        assert await exit_code(second) == 0


async def test_webhook_mode_accepts_updates_with_the_secret_token_and_refuses_others(
    telegram_api: FakeTelegram, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/telegram-hook"
    env = _environment(
        telegram_api,
        tmp_path / "lotse.sqlite3",
        LOTSE_TELEGRAM_WEBHOOK_URL=url,
        LOTSE_TELEGRAM_WEBHOOK_SECRET="richtig-geheim_42",
        LOTSE_TELEGRAM_WEBHOOK_LISTEN="127.0.0.1",
        LOTSE_TELEGRAM_WEBHOOK_PORT=str(port),
    )
    log = tmp_path / "lotse.log"
    async with lotse_telegram(env, log) as process:
        await telegram_api.wait_for(
            lambda: telegram_api.webhook is not None, f"setWebhook (the bot's log: {log})", 30
        )
        assert telegram_api.webhook is not None
        assert telegram_api.webhook["url"] == url
        assert telegram_api.webhook["secret_token"] == "richtig-geheim_42"
        assert telegram_api.commands[""][0]["command"] == "start"

        async with aiohttp.ClientSession() as http:
            for headers in ({"X-Telegram-Bot-Api-Secret-Token": "falsch"}, {}):
                update = telegram_api.message_update(BERT, "Hallo")
                assert await post_update(http, url, update, headers) == 403
            update = telegram_api.message_update(ANNA, "Thunderbird 60")
            headers = {"X-Telegram-Bot-Api-Secret-Token": "richtig-geheim_42"}
            assert await post_update(http, url, update, headers) == 200

        anna = TelegramChat(telegram_api, ANNA)
        await anna.replies(mentions("Schritt 1 von 5"))
        assert telegram_api.messages_to(BERT.id) == []
        assert telegram_api.calls_to("getUpdates") == []
        process.send_signal(signal.SIGTERM)
        assert await exit_code(process) == 0


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({}, "LOTSE_TELEGRAM_TOKEN"),
        ({"telegram_token": ""}, "LOTSE_TELEGRAM_TOKEN"),
        (
            {"telegram_token": "4242:t", "telegram_webhook_url": "https://bot.example.org/tg"},
            "LOTSE_TELEGRAM_WEBHOOK_SECRET",
        ),
        (
            {
                "telegram_token": "4242:t",
                "telegram_webhook_url": "https://bot.example.org/tg",
                "telegram_webhook_secret": "mit Leerzeichen",
            },
            "LOTSE_TELEGRAM_WEBHOOK_SECRET",
        ),
        ({"telegram_token": "4242:t", "telegram_allowed_groups": "-100, Gruppe"}, "GROUPS"),
    ],
)
def test_a_setting_that_cannot_work_is_named_before_anything_starts(
    settings: dict[str, str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_channel(Settings(_env_file=None, **settings), "telegram") == 2  # type: ignore[arg-type]
    assert named in capsys.readouterr().err
