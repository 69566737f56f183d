"""A Matrix user in tests: a real matrix-nio client with encryption and its own store, as a
person in Element would be (shared by the Matrix, agents', outbox and serve tests)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nio import (  # type: ignore[import-untyped]
    AsyncClient,
    AsyncClientConfig,
    LoginResponse,
    MegolmEvent,
    RoomCreateResponse,
    RoomEncryptedFile,
    RoomMessageFile,
    RoomMessageNotice,
    RoomMessageText,
    RoomSendResponse,
)

from tests.servers.synapse import MatrixAccount, SynapseServer

ENCRYPTION = {
    "type": "m.room.encryption",
    "state_key": "",
    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
}
GREETING = "Welches Mailprogramm benutzen Sie?"
WAIT = 30.0  # seconds for one answer; a bot process starts in about 3 s


# --- a user with a real client ---------------------------------------------------------------


@dataclass
class Received:
    room_id: str
    event: Any

    @property
    def body(self) -> str:
        return str(getattr(self.event, "body", ""))


@dataclass
class MatrixUser:
    """A person in Element, reduced to what the tests need: write, wait for answers."""

    client: Any
    account: MatrixAccount
    received: list[Received] = field(default_factory=list)

    @classmethod
    async def log_in(cls, server: SynapseServer, account: MatrixAccount, store: Path) -> MatrixUser:
        config = AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True)
        client = AsyncClient(server.url, account.user_id, store_path=str(store), config=config)
        response = await client.login(account.password, device_name="test")
        assert isinstance(response, LoginResponse), response
        user = cls(client, account)
        client.add_event_callback(
            user._on_message,
            (RoomMessageText, RoomMessageNotice, RoomMessageFile, RoomEncryptedFile),
        )
        client.add_event_callback(user._on_undecryptable, MegolmEvent)
        await user.sync()
        return user

    async def _on_message(self, room: Any, event: Any) -> None:
        if event.sender != self.account.user_id:
            self.received.append(Received(room.room_id, event))

    async def _on_undecryptable(self, room: Any, event: Any) -> None:
        if event.sender != self.account.user_id:
            self.received.append(Received(room.room_id, event))  # fails the tests' text checks

    async def sync(self, timeout_ms: int = 200) -> None:
        client = self.client
        await client.sync(timeout=timeout_ms)
        if client.outgoing_to_device_messages:
            await client.send_to_device_messages()
        if client.should_upload_keys:
            await client.keys_upload()
        if client.should_query_keys:
            await client.keys_query()
        if client.should_claim_keys:
            await client.keys_claim(client.get_users_for_key_claiming())

    async def until(self, condition: Callable[[], bool], what: str, within: float = WAIT) -> None:
        deadline = time.monotonic() + within
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; got {self.bodies()}")
            await self.sync()

    def bodies(self, since: int = 0) -> list[str]:
        return [item.body for item in self.received[since:]]

    async def open_direct_chat(self, bot: str, *, encrypted: bool) -> str:
        response = await self.client.room_create(
            is_direct=True, invite=[bot], initial_state=[ENCRYPTION] if encrypted else []
        )
        assert isinstance(response, RoomCreateResponse), response
        return str(response.room_id)

    async def say(self, room_id: str, text: str) -> str:
        """Send like Element does (m.text), after trusting the room's devices; the event id."""
        while room_id not in self.client.rooms:  # created a moment ago
            await self.sync()
        room = self.client.rooms[room_id]
        if room.encrypted:
            self.trust_devices_in(room_id)
        response = await self.client.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": text}
        )
        assert isinstance(response, RoomSendResponse), response
        return str(response.event_id)

    def trust_devices_in(self, room_id: str) -> None:
        for member in self.client.rooms[room_id].users:
            for device in self.client.device_store.active_user_devices(member):
                self.client.verify_device(device)

    async def ask(self, room_id: str, text: str, expected: str) -> list[str]:
        """Say something and wait for the answer that contains `expected`; all new answers."""
        start = len(self.received)
        await self.say(room_id, text)
        await self.until(lambda: any(expected in body for body in self.bodies(start)), expected)
        return self.bodies(start)

    async def close(self) -> None:
        await self.client.close()


async def matrix_user(server: SynapseServer, tmp_path: Path, role: str) -> MatrixUser:
    """A new account on `server`, logged in with its store under `tmp_path / role`."""
    store = tmp_path / role
    store.mkdir()
    return await MatrixUser.log_in(server, server.new_account(role), store)
