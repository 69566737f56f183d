"""The channel outbox: deliveries for Matrix queued by an instance that does not run Matrix and
delivered, once and in order, by the one that does (bot/tickets/channel_outbox.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import Connection, func, insert, select

from bot.clock import utcnow
from bot.config import Settings
from bot.engine.decision import Attachment, Reply
from bot.engine.state import Option
from bot.serve.process import serve as serve_all
from bot.storage.store import Store
from bot.storage.tables import ChannelOutboxRow, JobLease
from bot.tickets import channel_outbox
from bot.tickets.channel_outbox import Deliverer
from tests.matrix_user import GREETING, matrix_user
from tests.servers.synapse import SynapseServer
from tests.servers.telegram_api import FakeTelegram, FakeUser, TelegramChat, mentions
from tests.support import wait_until

AGENT_CHAT = -1001234567890
DORA = FakeUser(1001, "Dora", "de")  # a user on Telegram
CARLA = FakeUser(2002, "Carla", "de")  # a helpdesk agent in the Telegram group


def _matrix_is_configured(conn: Connection) -> None:
    """What every instance configured for Matrix does at start: compete for its lease."""
    conn.execute(insert(JobLease).values(name="channel:matrix"))


def _count(conn: Connection, delivered: bool) -> int:
    column = ChannelOutboxRow.delivered_at
    condition = column.is_not(None) if delivered else column.is_(None)
    return int(conn.execute(select(func.count()).where(condition)).scalar_one())


@pytest.fixture
async def two_stores(postgres_url: str) -> AsyncIterator[tuple[Store, Store]]:
    """Two instances' stores on one PostgreSQL."""
    first = await Store.open(postgres_url)
    second = await Store.open(postgres_url, migrate=False)
    yield first, second
    await first.close()
    await second.close()


async def test_nothing_is_queued_for_a_channel_no_instance_is_configured_for(
    two_stores: tuple[Store, Store],
) -> None:
    store, _ = two_stores
    payload = channel_outbox.replies_payload("@anna:uni.example", [Reply("Hallo")])
    assert not await store.run(channel_outbox.queue, "matrix", "user", payload, utcnow())
    await store.run(_matrix_is_configured)
    assert await store.run(channel_outbox.queue, "matrix", "user", payload, utcnow())
    # Telegram runs on every instance: it never needs the outbox.
    assert not await store.run(channel_outbox.queue, "telegram", "user", payload, utcnow())


def test_replies_keep_their_options_and_attachments_through_the_table() -> None:
    replies = [
        Reply("Welches Programm?", (Option("Thunderbird", "p:thunderbird"),)),
        Reply("Die Datei", attachment=Attachment("a.txt", b"\x00\xffdaten", "text/plain")),
    ]
    payload = channel_outbox.replies_payload("@anna:uni.example", replies)
    assert channel_outbox.replies_from_payload(payload) == ("@anna:uni.example", replies)


async def test_two_deliverers_at_once_deliver_every_row_once_and_in_order(
    two_stores: tuple[Store, Store],
) -> None:
    """Two instances that briefly both think they lead Matrix poll the same rows."""
    first_store, second_store = two_stores
    await first_store.run(_matrix_is_configured)
    for number in range(120):
        payload = channel_outbox.replies_payload(
            "@anna:uni.example", [Reply(f"Nachricht {number}")]
        )
        await first_store.run(channel_outbox.queue, "matrix", "user", payload, utcnow())

    sent: list[tuple[str, str]] = []

    def sender(name: str) -> channel_outbox.UserSender:
        async def send(user: str, replies: list[Reply]) -> None:
            await asyncio.sleep(0)  # let the other deliverer run in between
            sent.append((name, replies[0].text))

        return send

    first = Deliverer(first_store, "matrix", sender("first"), None)
    second = Deliverer(second_store, "matrix", sender("second"), None)
    while await first_store.run(_count, False):
        await asyncio.gather(first.deliver_pending(), second.deliver_pending())

    texts = [text for _name, text in sent]
    assert sorted(texts, key=lambda text: int(text.split()[1])) == [
        f"Nachricht {n}" for n in range(120)
    ]
    assert len(set(texts)) == 120  # none twice
    for name in ("first", "second"):  # each deliverer's own share went out in order
        own = [int(text.split()[1]) for who, text in sent if who == name]
        assert own == sorted(own)
    assert await first_store.run(_count, True) == 120


async def test_a_failing_delivery_is_retried_later_rows_wait_and_it_is_given_up_after_a_bound(
    two_stores: tuple[Store, Store],
) -> None:
    store, _ = two_stores
    await store.run(_matrix_is_configured)
    for text in ("eins", "zwei"):
        payload = channel_outbox.replies_payload("@anna:uni.example", [Reply(text)])
        await store.run(channel_outbox.queue, "matrix", "user", payload, utcnow())
    sent: list[str] = []
    broken = True

    async def send(user: str, replies: list[Reply]) -> None:
        if broken:
            raise ConnectionError("homeserver away")
        sent.append(replies[0].text)

    deliverer = Deliverer(store, "matrix", send, None)
    assert await deliverer.deliver_pending() == 0
    assert await deliverer.deliver_pending() == 0  # "eins" waits for its retry; "zwei" behind it
    assert sent == []

    broken = False
    later = utcnow() + timedelta(seconds=3)  # after the first pause (2 s)
    token = "test"
    due = await store.run(channel_outbox.claim, "matrix", token, later, 10)
    # Rows without a ticket are one line: "zwei" is due only once "eins" is through.
    assert [row.payload["replies"][0]["text"] for row in due] == ["eins"]
    await store.run(channel_outbox.release, token)

    # A row failing MAX_ATTEMPTS times is given up; the rows behind it go out.
    row_id = due[0].id
    for _ in range(channel_outbox.MAX_ATTEMPTS - 1):
        await store.run(channel_outbox.failed, row_id, utcnow() - timedelta(minutes=5))
    assert await deliverer.deliver_pending() == 1
    assert sent == ["zwei"]

    # The purge deletes delivered and given-up rows a day later, not before.
    assert await store.run(channel_outbox.purge, utcnow()) == 0
    assert await store.run(channel_outbox.purge, utcnow() + timedelta(days=1, minutes=1)) == 2


# --- two `lotse serve` instances on one PostgreSQL: Telegram only, and Matrix -----------------


@pytest.mark.slow
async def test_telegram_only_instance_reaches_matrix_users_and_the_matrix_room_once(
    synapse_server: SynapseServer, telegram_api: FakeTelegram, postgres_url: str, tmp_path: Path
) -> None:
    """Anna writes on Matrix, Dora on Telegram; Carla works in the Telegram group, Bert in the
    Matrix room. One instance runs Matrix only, the other Telegram only."""
    api = telegram_api
    anna = await matrix_user(synapse_server, tmp_path, "anna")
    bert = await matrix_user(synapse_server, tmp_path, "bert")
    lotse = synapse_server.new_account("lotse")
    agents_room = (await bert.client.room_create(name="Helpdesk", invite=[lotse.user_id])).room_id
    common = Settings(_env_file=None, database_url=postgres_url, nlu="lexicon", locale="de")
    with_matrix = common.model_copy(
        update={
            "matrix_homeserver": synapse_server.url,
            "matrix_user": lotse.user_id,
            "matrix_password": SecretStr(lotse.password),
            "matrix_store_dir": tmp_path / "bot-store",
            "matrix_agent_room": agents_room,
        }
    )
    telegram_only = common.model_copy(
        update={
            "telegram_token": SecretStr(api.token),
            "telegram_base_url": api.base_url,
            "telegram_agent_chat": AGENT_CHAT,
        }
    )
    stop = asyncio.Event()
    matrix_task = asyncio.create_task(serve_all(with_matrix, http=False, stop=stop))
    telegram_task: asyncio.Task[int] | None = None
    try:
        await bert.until(
            lambda: lotse.user_id in getattr(bert.client.rooms.get(agents_room), "users", {}),
            "Lotse to join the agents' room",
        )
        await bert.ask(agents_room, "!tickets", "Keine offenen Tickets.")
        telegram_task = asyncio.create_task(serve_all(telegram_only, http=False, stop=stop))

        # Anna opens ticket 1 on Matrix.
        room = await anna.open_direct_chat(lotse.user_id, encrypted=False)
        await anna.until(lambda: any(GREETING in body for body in anna.bodies()), "the greeting")
        await anna.ask(room, "Thunderbird 60", "Schritt 1 von 5")
        await anna.ask(room, "!mensch", "Nummer 1")

        # Carla answers it in the Telegram group: accepted there, delivered on Matrix.
        carla = TelegramChat(api, CARLA, chat=api.group_chat(AGENT_CHAT))
        answer = "Bitte prüfen Sie Port 993."
        start = len(anna.received)
        carla.send(f"/antwort 1 {answer}")
        await anna.until(lambda: any(answer in b for b in anna.bodies(start)), "Carla's answer")
        mirrored = f"#1 Antwort von Carla (2002) über Telegram: {answer}"
        await bert.until(lambda: any(mirrored in b for b in bert.bodies()), "the mirror")

        # Dora opens ticket 2 on the Telegram-only instance: its card reaches the Matrix room.
        dora = TelegramChat(api, DORA)
        await dora.say("Thunderbird 60")
        await dora.say("/mensch", mentions("Nummer 2"))
        await api.wait_for(
            lambda: any(m.text.startswith("Ticket #2") for m in api.messages_to(AGENT_CHAT)),
            "the card in the Telegram group",
        )
        await bert.until(lambda: any(b.startswith("Ticket #2") for b in bert.bodies()), "card")

        # Every queued delivery went out, and a delivered row is never sent again: what
        # Synapse holds now is all there will be; the clients fetch it.
        store = await Store.open(postgres_url, migrate=False)
        try:
            await wait_until(
                lambda: store.run(lambda conn: _count(conn, delivered=False) == 0),
                "the channel outbox to be delivered",
            )
        finally:
            await store.close()
        await anna.sync()
        await bert.sync()
        assert sum(answer in b for b in anna.bodies(start)) == 1
        assert sum(b.startswith("Ticket #2") for b in bert.bodies()) == 1
        assert sum(mirrored in b for b in bert.bodies()) == 1
        assert not any("nicht erreichbar" in m.text for m in api.messages_to(AGENT_CHAT))
        assert sum(m.text.startswith("Ticket #2") for m in api.messages_to(AGENT_CHAT)) == 1
    finally:
        stop.set()
        codes = [await asyncio.wait_for(matrix_task, 30)]
        if telegram_task is not None:
            codes.append(await asyncio.wait_for(telegram_task, 30))
        await anna.close()
        await bert.close()
    assert codes == [0] * len(codes)
