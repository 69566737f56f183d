"""Two `lotse serve` instances on one PostgreSQL with the same Matrix account, as
`docker compose up --scale bot=2` runs them (review B5): one syncs and answers, the other stands
by (healthy), and takes over when the first stops. Against a real Synapse."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from bot.config import Settings
from bot.serve.leader import LeaseTiming
from bot.serve.process import serve
from tests.matrix_user import matrix_user
from tests.servers.synapse import SynapseServer
from tests.support import KNOWLEDGE_DIR, free_port, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

QUICK = LeaseTiming(ttl=5.0, renew=0.5, retry=0.2)


@asynccontextmanager
async def instance(settings: Settings) -> AsyncIterator[tuple[asyncio.Event, asyncio.Task[int]]]:
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, stop=stop, matrix_lease=QUICK))
    try:
        yield stop, task
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def matrix_state(settings: Settings) -> tuple[int, dict[str, Any]]:
    url = f"http://127.0.0.1:{settings.http_port}/healthz"
    async with aiohttp.ClientSession() as http:

        async def answer() -> tuple[int, dict[str, Any]] | None:
            try:
                async with http.get(url) as response:
                    report = await response.json()
                    return response.status, report["channels"]["matrix"]
            except aiohttp.ClientConnectorError:
                return None

        state: tuple[int, dict[str, Any]] = await wait_until(answer, "the HTTP server", every=0.1)
        return state


async def until_state(settings: Settings, state: str, within: float = 30) -> dict[str, Any]:
    seen: list[tuple[int, dict[str, Any]]] = []

    async def became() -> dict[str, Any] | None:
        seen.append(await matrix_state(settings))
        status, channel = seen[-1]
        if channel["state"] != state:
            return None
        assert status == 200
        return channel

    channel: dict[str, Any] = await wait_until(
        became, lambda: f"Matrix to become {state} (last: {seen[-1]})", within=within, every=0.1
    )
    return channel


async def test_two_instances_answer_each_matrix_message_once_and_the_standby_takes_over(
    synapse_server: SynapseServer, postgres_url: str, tmp_path: Path
) -> None:
    bot = synapse_server.new_account("lotse")
    anna = await matrix_user(synapse_server, tmp_path, "anna")

    def settings() -> Settings:  # the same for both, but their own HTTP port
        return Settings(
            _env_file=None,
            database_url=postgres_url,
            knowledge_dir=KNOWLEDGE_DIR,
            matrix_homeserver=synapse_server.url,
            matrix_user=bot.user_id,
            matrix_password=SecretStr(bot.password),
            matrix_store_dir=tmp_path / "store",  # the shared volume
            http_port=free_port(),
        )

    first, second = settings(), settings()
    try:
        async with instance(first) as (stop_first, first_task):
            await until_state(first, "running")
            async with instance(second) as (_stop_second, second_task):
                assert await until_state(second, "standby") == {"ok": True, "state": "standby"}

                room = await anna.open_direct_chat(bot.user_id, encrypted=False)
                await anna.until(lambda: bool(anna.bodies()), "the greeting")
                await anna.ask(room, "Thunderbird 60", "Schritt 1 von 5")
                # Time for a second answer, had the standby a sync stream of its own: an
                # answer that must never be sent has no event to wait on.
                await asyncio.sleep(2)
                await anna.sync()
                answers = [body for body in anna.bodies() if "Schritt 1 von 5" in body]
                assert len(answers) == 1, anna.bodies()
                assert (await matrix_state(second))[1]["state"] == "standby"

                stop_first.set()  # the first instance ends (a deploy, a crash)
                assert await asyncio.wait_for(first_task, 30) == 0
                await until_state(second, "running")
                seen = len(anna.received)
                await anna.ask(room, "1", "Schritt 2 von 5")
                assert not second_task.done()
                assert len([b for b in anna.bodies(seen) if "Schritt 2 von 5" in b]) == 1
    finally:
        await anna.close()
