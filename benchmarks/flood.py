"""One user floods a taken ticket, then another user asks for a human.

The agents' group is the fake Telegram Bot API of the tests behind python-telegram-bot's rate
limiter (about 20 posts a minute in a group, like Telegram). Prints how long the 45 messages
took, after how many seconds the second user's card was in the group, and how many relay
posts and ticket mails the flood made.

Run: `.venv/bin/python -m benchmarks.flood [--messages 45]`.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from pydantic import SecretStr

from bot.agents.desk import Desk
from bot.agents.telegram import connect_agents
from bot.channels.telegram import TelegramChannel, build_application
from bot.clock import utcnow
from bot.config import Settings
from bot.i18n import translator
from bot.knowledge.loader import load_knowledge
from bot.tickets import records
from bot.turns import Inbound
from tests.servers.telegram_api import FakeTelegram
from tests.support import KNOWLEDGE_DIR, open_app

GROUP = -1001234567890
SETTLE = 5.0  # seconds after the card: time for relays still held or in flight


async def measure(messages: int, database: Path) -> str:
    api = FakeTelegram()
    await api.start()
    knowledge = load_knowledge(KNOWLEDGE_DIR)
    lotse = await open_app(f"sqlite:///{database}", knowledge, tickets=True, clock=utcnow)
    service, tickets = lotse.service, lotse.tickets
    settings = Settings(
        _env_file=None,
        telegram_token=SecretStr(api.token),
        telegram_base_url=api.base_url,
        telegram_agent_chat=GROUP,
    )
    app = build_application(settings)
    channel = TelegramChannel(service)
    channel.install(app)
    await app.initialize()
    desk = Desk(tickets, service.registry, translator("de"))
    connect_agents(app, channel, settings, desk)
    await app.start()
    try:
        await service.handle(Inbound("telegram", "1001", text="Thunderbird"))
        await service.handle(Inbound("telegram", "1001", command="mensch"))
        await tickets.take(1, "Bert")
        mails_before = await service.store.run(records.queued_mails)
        started = time.monotonic()
        for number in range(1, messages + 1):
            await service.handle(Inbound("telegram", "1001", text=f"Nachricht {number}"))
        flood = time.monotonic() - started
        asked = time.monotonic()
        await service.handle(Inbound("telegram", "1002", command="mensch"))
        await api.wait_for(
            lambda: any(m.text.startswith("Ticket #2") for m in api.messages_to(GROUP)),
            "the second card",
            within=600,
        )
        card = time.monotonic() - asked
        mails = await service.store.run(records.queued_mails) - mails_before - 1  # not #2's
        await asyncio.sleep(SETTLE)
        relays = sum(1 for m in api.messages_to(GROUP) if m.text.startswith("#1 Nutzer:"))
    finally:
        await desk.stop_delivery("telegram", 5.0)
        await app.stop()
        await app.shutdown()
        await service.close()
        await api.stop()
    return (
        f"{messages} messages took {flood:.2f} s; the next user's card was in the group after "
        f"{card:.1f} s; relay posts of the flood {SETTLE:.0f} s later: {relays}; "
        f"ticket mails of the flood: {mails}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=45)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        print(asyncio.run(measure(args.messages, Path(directory) / "flood.sqlite3")))


if __name__ == "__main__":
    main()
