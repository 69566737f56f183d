"""Two agents at the same moment (PostgreSQL, two connections as two instances would have):
exactly one gets the ticket, the other learns who has it."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from bot.knowledge.base import KnowledgeBase
from bot.tickets import records
from bot.tickets.models import TicketError
from tests.servers.postgres import waiting_for_a_lock
from tests.support import Chat, open_app, wait_until


async def test_of_two_agents_taking_one_ticket_at_once_the_second_is_told_who_has_it(
    postgres_url: str, knowledge: KnowledgeBase
) -> None:
    app = await open_app(postgres_url, knowledge, tickets=True)
    service, tickets = app.service, app.tickets
    await Chat(service).command("mensch")
    engine = create_async_engine(postgres_url)
    try:
        async with engine.connect() as petra, engine.connect() as jonas:
            # Petra's take is under way (not committed) when Jonas's starts.
            await petra.begin()
            await petra.run_sync(records.take, 1, "Petra", None)

            async def jonas_takes() -> None:
                async with jonas.begin():
                    await jonas.run_sync(records.take, 1, "Jonas", None)

            second = asyncio.create_task(jonas_takes())
            await wait_until(
                lambda: service.store.run(waiting_for_a_lock), "Jonas to wait for Petra's row"
            )
            await petra.commit()
            with pytest.raises(TicketError, match="hat bereits Petra übernommen"):
                await second
        ticket = await tickets.get(1)
        assert ticket is not None and (ticket.status, ticket.assignee) == ("open", "Petra")
    finally:
        await engine.dispose()
        await service.close()
