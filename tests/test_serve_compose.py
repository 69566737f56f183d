"""The docker compose set-up, run as plain processes (no Docker engine here): the `migrate` and
`bot` services' commands and environment from docker-compose.yml, with the service names mapped
to a throwaway PostgreSQL and the Rasa server on loopback."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.servers.telegram_api import FakeTelegram, FakeUser, TelegramChat, mentions
from tests.support import REPO, free_port, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SECRET = "compose-probe_1"
ANNA = FakeUser(5001, "Anna", "de")


def compose_service(name: str) -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    return dict(services[name])


def on_loopback(environment: dict[str, str], postgres_url: str, rasa_url: str) -> dict[str, str]:
    """The compose environment with the other containers' addresses replaced by loopback ones."""
    mapped = dict(environment)
    assert "@postgres:5432/" in mapped["LOTSE_DATABASE_URL"]
    mapped["LOTSE_DATABASE_URL"] = postgres_url
    assert mapped["LOTSE_RASA_URL"] == "http://nlu:5005"
    mapped["LOTSE_RASA_URL"] = rasa_url
    assert mapped["LOTSE_HTTP_LISTEN"] == "0.0.0.0"
    mapped["LOTSE_HTTP_LISTEN"] = "127.0.0.1"
    mapped["LOTSE_HTTP_PORT"] = str(free_port())
    return mapped


def command_line(command: list[str]) -> list[str]:
    """`lotse ...` as installed in this virtual environment (the image has it on PATH)."""
    assert command[0] == "lotse"
    return [str(Path(sys.executable).parent / "lotse"), *command[1:]]


async def test_the_compose_commands_as_processes_migrate_serve_report_healthy_and_answer(
    postgres_url: str, rasa_url: str, telegram_api: FakeTelegram, tmp_path: Path
) -> None:
    migrate, bot = compose_service("migrate"), compose_service("bot")
    assert migrate["environment"] == bot["environment"]
    environment = on_loopback(bot["environment"], postgres_url, rasa_url)
    assert environment["LOTSE_NLU"] == "rasa"
    webhook_port = free_port()
    webhook = f"http://127.0.0.1:{webhook_port}/telegram"
    env = {key: value for key, value in os.environ.items() if not key.startswith("LOTSE_")}
    env.update(environment)
    env.update(
        LOTSE_TELEGRAM_TOKEN=telegram_api.token,
        LOTSE_TELEGRAM_BASE_URL=telegram_api.base_url,
        LOTSE_TELEGRAM_WEBHOOK_URL=webhook,
        LOTSE_TELEGRAM_WEBHOOK_SECRET=SECRET,
        LOTSE_TELEGRAM_WEBHOOK_PORT=str(webhook_port),
        LOTSE_LOG_FORMAT="json",
    )

    migration = await asyncio.create_subprocess_exec(
        *command_line(migrate["command"]), cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE
    )
    output, _ = await asyncio.wait_for(migration.communicate(), 60)
    assert migration.returncode == 0
    assert b"database is up to date" in output

    log = tmp_path / "bot.log"
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            *command_line(bot["command"]), cwd=tmp_path, env=env, stdout=sink, stderr=sink
        )
    health = f"http://127.0.0.1:{environment['LOTSE_HTTP_PORT']}/healthz"
    try:
        async with aiohttp.ClientSession() as http:
            report: dict[str, Any] = {}

            async def healthy() -> bool:
                assert process.returncode is None, f"lotse serve ended; see {log}"
                try:
                    async with http.get(health) as response:
                        report.clear()
                        report.update(await response.json())
                except aiohttp.ClientConnectorError:
                    return False
                return report.get("status") == "ok"

            await wait_until(
                healthy, lambda: f"/healthz to say ok (last: {report}; see {log})", within=60
            )
            assert report["database"]["ok"] and report["database"]["dialect"] == "postgresql"
            assert report["rasa"]["ok"] is True
            assert report["channels"]["telegram"] == {
                "ok": True,
                "state": "running",
                "detail": "webhook",
            }
            update = telegram_api.message_update(ANNA, "Ich habe Thunderbird 60")
            headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
            async with http.post(webhook, json=update, headers=headers) as response:
                assert response.status == 200
        await TelegramChat(telegram_api, ANNA).replies(mentions("Schritt 1 von 5"))
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), 30) == 0
