"""`lotse serve` keeps configured secrets out of /healthz and out of its log (review B1).

The reviewer's reproduction, as a process: Telegram rejects the bot's token (the fake Bot API
answers 401 to getMe, and python-telegram-bot's InvalidToken then quotes the token), the Rasa
URL and the database URL carry passwords; /healthz and the log, in both formats, must show none
of them."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.servers.telegram_api import FakeTelegram
from tests.support import KNOWLEDGE_DIR, free_port, wait_until

TOKEN = "123456:SECRET-TOKEN-abcdef"
RASA_PASSWORD = "rasa-pass-7b1f"


@pytest.fixture
async def rejecting_telegram() -> Any:
    """A Bot API that knows the token but rejects it on getMe, as Telegram does a revoked one."""
    api = FakeTelegram(token=TOKEN)
    await api.start()
    api.fail("getMe", code=401, description="Unauthorized", times=1000)
    yield api
    await api.stop()


async def wait_for_report(port: int, process: asyncio.subprocess.Process) -> tuple[int, str]:
    """The first /healthz answer that shows the Telegram channel failed: (status, raw body)."""
    async with aiohttp.ClientSession() as http:

        async def failed() -> tuple[int, str] | None:
            assert process.returncode is None, "lotse serve ended early"
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                    body = await response.text()
                    if json.loads(body)["channels"]["telegram"]["state"] == "failed":
                        return response.status, body
            except aiohttp.ClientConnectorError:
                pass
            return None

        report: tuple[int, str] = await wait_until(
            failed, "the Telegram channel to fail", within=30, every=0.1
        )
        return report


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_a_rejected_telegram_token_shows_neither_in_healthz_nor_in_the_log(
    log_format: str, rejecting_telegram: FakeTelegram, tmp_path: Path
) -> None:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("LOTSE_")}
    env.update(
        LOTSE_DATABASE_URL=f"sqlite:///{tmp_path / 'lotse.sqlite3'}",
        LOTSE_KNOWLEDGE_DIR=str(KNOWLEDGE_DIR),
        LOTSE_TELEGRAM_TOKEN=TOKEN,
        LOTSE_TELEGRAM_BASE_URL=rejecting_telegram.base_url,
        LOTSE_NLU="rasa",
        LOTSE_RASA_URL=f"http://lotse:{RASA_PASSWORD}@127.0.0.1:{free_port()}",
        LOTSE_HTTP_PORT=str(port),
        LOTSE_LOG_FORMAT=log_format,
        LOTSE_LOG_LEVEL="DEBUG",  # the most a log ever says
    )
    lotse = str(Path(sys.executable).parent / "lotse")
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            lotse, "serve", cwd=tmp_path, env=env, stdout=sink, stderr=sink
        )
    try:
        status, body = await wait_for_report(port, process)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 30)

    assert status == 503
    report = json.loads(body)
    assert report["channels"]["telegram"] == {
        "ok": False,
        "state": "failed",
        "detail": "InvalidToken",
    }
    assert report["rasa"]["url"].startswith("http://lotse:***@127.0.0.1:")
    for secret in (TOKEN, "SECRET-TOKEN", RASA_PASSWORD):
        assert secret not in body

    written = log.read_text()
    assert "InvalidToken" in written  # the failure itself is logged, with its traceback
    assert "Traceback" in written
    assert "The token `***` was rejected" in written
    for secret in (TOKEN, "SECRET-TOKEN", RASA_PASSWORD):
        assert secret not in written
    if log_format == "json":
        for line in written.splitlines():
            json.loads(line)  # masking keeps every line one JSON object
