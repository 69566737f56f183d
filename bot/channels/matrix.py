"""The Matrix channel, `lotse matrix` (matrix-nio with end-to-end encryption, vodozemac).

Translates Matrix room messages into `Inbound`s for the conversation service and its replies
into `m.notice` messages (plain and HTML body, options as a numbered list; see
`matrix_format.py`). The user is their Matrix ID (`@anna:uni.example`), so one user has one
conversation whichever room they write in; the answer goes to the room the message came from.

Settings: `LOTSE_MATRIX_HOMESERVER`, `LOTSE_MATRIX_USER` (full Matrix ID),
`LOTSE_MATRIX_PASSWORD` or `LOTSE_MATRIX_ACCESS_TOKEN`, `LOTSE_MATRIX_STORE_DIR`,
`LOTSE_MATRIX_ALLOWED_ROOMS`.

- **Store directory.** `session.json` (mode 0600) keeps the device id and access token, nio's
  SQLite store next to it the encryption keys, the trust decisions and the sync token. A
  restart logs in as the same device with the same keys; with a password, a revoked token is
  replaced by logging in again *as the same device*. Back up the directory with the database.
- **What is answered.** Invites to direct chats (`is_direct`) are accepted and the inviter
  greeted; other invites only for rooms in `LOTSE_MATRIX_ALLOWED_ROOMS` (room ids or aliases,
  comma-separated), the rest are declined. A room with more than two members counts as a group
  and is only answered when it is listed. Text messages are answered, edits and notices
  (other bots) are not. `!neu`, `!pruefen`, `!mensch`, `!loeschen`, `!hilfe`, `!sprache en`,
  `!start` (or with `/`) are commands. Matrix gives no language hint: users start in
  `LOTSE_LOCALE` and can switch with `!sprache`.
- **Nothing twice, nothing lost.** On the very first start the sync's backlog is skipped, so
  old messages are not answered. After that the sync token is saved only when every message
  up to it has been answered, so whatever arrived while the bot was down (or was being
  answered when it stopped) is answered after a restart. Replies are sent with transaction ids
  derived from the message's event id, so a resent reply is not shown twice.
- **Encryption, trust on first use.** The bot encrypts for every device of the members of the
  rooms it answers in. It does no interactive verification: the first time it sees a device
  it marks it as verified in its store (trust on first use). If a known device later shows
  different keys, nio rejects them and the bot does not encrypt for the impostor. Users who
  need more can compare the bot's device key (shown in Element's session list) out of band.
  Messages the bot cannot decrypt yet are kept for a few minutes and answered when the key
  arrives; the bot asks the sender's devices for the key.
- **Robustness.** A homeserver that goes away is retried with exponential backoff (0.5 s up to
  10 s); 429 answers are retried after the server's `retry_after_ms` (nio does this); each
  message is answered in its own task, so one that fails is logged and the others go on. The
  messages of one user are answered one after another in the order they came, different
  users concurrently. Users' messages are marked read when the bot takes them up.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import logging
import os
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

# matrix-nio ships no type information (no py.typed): its names are `Any` here, and the
# few values this module keeps from it are narrowed right where they come in.
from nio import (  # type: ignore[import-untyped]
    AsyncClient,
    AsyncClientConfig,
    EncryptionError,
    ErrorResponse,
    InviteMemberEvent,
    LocalProtocolError,
    LoginResponse,
    MegolmEvent,
    OlmUnverifiedDeviceError,
    RoomMemberEvent,
    RoomMessageText,
    SyncError,
    SyncResponse,
    UploadResponse,
    WhoamiResponse,
)

from bot.channels.base import OnFailure, Stopper
from bot.channels.matrix_format import is_edit, message_text, parse_command, reply_content
from bot.config import Settings
from bot.conversation import ConversationService
from bot.engine.decision import Attachment, Reply
from bot.locks import KeyedLocks
from bot.retry import Backoff
from bot.turns import Inbound

__all__ = [
    "CHANNEL",
    "DEVICE_NAME",
    "DIRECT_ROOMS_FILE",
    "DRAIN_SECONDS",
    "NETWORK_ERRORS",
    "SEND_ATTEMPTS",
    "SESSION_FILE",
    "SYNC_TIMEOUT_MS",
    "TIMELINE_LIMIT",
    "UNDECRYPTED_KEEP_SECONDS",
    "DirectRooms",
    "MatrixChannel",
    "MatrixLoginError",
    "MatrixRunner",
    "Session",
    "allowed_rooms",
    "configuration_problem",
    "log_in",
    "new_client",
    "transaction_id",
]

CHANNEL = "matrix"
DEVICE_NAME = "Lotse"
SESSION_FILE = "session.json"
DIRECT_ROOMS_FILE = "direct_rooms.json"
SYNC_TIMEOUT_MS = 30_000  # long polling: the homeserver answers at once when something happens
TIMELINE_LIMIT = 100  # events per room and sync; more while the bot was down makes a gap
SEND_ATTEMPTS = 8  # with the backoff about half a minute: a homeserver restart fits
UNDECRYPTED_KEEP_SECONDS = 300.0
DRAIN_SECONDS = 10.0  # on shutdown, time for answers under way to be sent

log = logging.getLogger(__name__)
NETWORK_ERRORS = (aiohttp.ClientError, TimeoutError)


class MatrixLoginError(Exception):
    """The homeserver refused the credentials (or they cannot work); the message says why."""


# --- the session file ------------------------------------------------------------------------


@dataclass(frozen=True)
class Session:
    """Who the bot is logged in as: kept so that a restart reuses the device and its keys."""

    homeserver: str
    user_id: str
    device_id: str
    access_token: str

    @classmethod
    def load(cls, path: Path) -> Session | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**{name: str(data[name]) for name in cls.__dataclass_fields__})
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as error:
            log.warning("ignoring unreadable %s (%s); logging in anew", path, error)
            return None

    def save(self, path: Path) -> None:
        """Atomically, readable by the bot's user only (the token is a credential)."""
        temporary = path.with_suffix(".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(asdict(self), handle)
        os.replace(temporary, path)


# --- small helpers ---------------------------------------------------------------------------


def allowed_rooms(setting: str) -> frozenset[str]:
    """`LOTSE_MATRIX_ALLOWED_ROOMS`: comma-separated room ids or aliases."""
    return frozenset(part.strip() for part in setting.split(",") if part.strip())


def transaction_id(event_id: str, index: int) -> str:
    """The same reply to the same message gets the same id: the homeserver then drops a resend."""
    digest = hashlib.sha256(event_id.encode()).hexdigest()[:24]
    return f"lotse.{digest}.{index}"


@dataclass
class _Batch:
    """The answers started for one sync; its token may be saved once all of them are done."""

    token: str
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def done(self) -> bool:
        return all(task.done() for task in self.tasks)


@dataclass
class _FreshRoom:
    """A direct chat joined on an invite: greet the inviter unless they already wrote."""

    inviter: str
    answer_messages: bool  # False for invites found on the very first start (backlog)


@dataclass
class _Undecrypted:
    room_id: str
    event: Any  # MegolmEvent
    since: float


# --- where users write ----------------------------------------------------------------------


class DirectRooms:
    """Which direct chat each Matrix user talks to the bot in, kept in a small JSON file."""

    def __init__(self, path: Path | None, channel: MatrixChannel) -> None:
        self.path = path
        self.channel = channel
        self._rooms: dict[str, str] = self._load()

    def _load(self) -> dict[str, str]:
        if self.path is None or not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            log.warning("ignoring unreadable %s (%s)", self.path, error)
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(user): str(room) for user, room in data.items()}

    def remember(self, user: str, room_id: str) -> None:
        if self._rooms.get(user) == room_id:
            return
        self._rooms[user] = room_id
        if self.path is not None:
            temporary = self.path.with_suffix(".tmp")
            temporary.write_text(json.dumps(self._rooms), encoding="utf-8")
            os.replace(temporary, self.path)

    def find(self, user: str) -> str | None:
        """The user's direct chat: remembered, or a two-person room the bot shares with them."""
        remembered = self._rooms.get(user)
        if remembered is not None:
            return remembered
        for room in self.channel.client.rooms.values():
            if room.member_count <= 2 and user in room.users:
                self.remember(user, room.room_id)
                return str(room.room_id)
        return None


# --- the channel -----------------------------------------------------------------------------


class MatrixChannel:
    """The sync loop: events in, `ConversationService.handle`, messages out."""

    def __init__(
        self,
        client: Any,  # nio.AsyncClient, logged in, store loaded
        service: ConversationService,
        *,
        allowed: frozenset[str] = frozenset(),
        relogin: Callable[[], Awaitable[None]] | None = None,
        direct_rooms: Path | None = None,
    ) -> None:
        self.client = client
        self.service = service
        self.allowed = allowed
        self._relogin = relogin
        self._token: str | None = client.store.load_sync_token()
        self._saved_token = self._token
        # nio keeps no room state across restarts: the first sync of a process asks for the
        # full state (members, power levels), else sending to a quiet room fails after one.
        self._full_state_loaded = False
        self._batches: deque[_Batch] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self._fresh: dict[str, _FreshRoom] = {}
        self._joins_to_retry: dict[str, bool] = {}  # room id -> direct
        self._undecrypted: list[_Undecrypted] = []
        self._locks: KeyedLocks[str] = KeyedLocks()
        # nio's keys_query raises when there is nothing (left) to query: one at a time.
        self._keys_lock = asyncio.Lock()
        # The agents' room (bot/agents/matrix.py): its messages go to the desk, not to Lotse.
        self.agent_room: str | None = None
        self.on_agent_message: Callable[[Any], Awaitable[None]] | None = None
        # Where each user writes to the bot directly: answers they did not ask for go there.
        self.rooms = DirectRooms(direct_rooms, self)

    @property
    def user_id(self) -> str:
        return str(self.client.user_id)

    # --- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        """Sync until cancelled; then let the answers under way finish and save the token."""
        backoff = Backoff()
        try:
            while True:
                try:
                    await self._sync_once()
                except NETWORK_ERRORS as error:
                    delay = backoff.next_delay()
                    log.warning("homeserver unreachable (%r); retrying in %.1f s", error, delay)
                    await asyncio.sleep(delay)
                    continue
                except _SyncFailed as error:
                    delay = backoff.next_delay()
                    log.warning("sync failed (%s); retrying in %.1f s", error, delay)
                    await asyncio.sleep(delay)
                    continue
                backoff.reset()
        finally:
            await self._drain()

    async def _sync_once(self) -> None:
        first = self._token is None
        limit = 1 if first else TIMELINE_LIMIT  # the first sync's timeline is skipped anyway
        response = await self.client.sync(
            timeout=0 if first else SYNC_TIMEOUT_MS,
            sync_filter={
                "room": {"timeline": {"limit": limit}},
                "presence": {"not_types": ["*"]},
            },
            since=self._token,
            full_state=not self._full_state_loaded or None,
        )
        if isinstance(response, SyncError):
            if response.status_code == "M_UNKNOWN_TOKEN":
                if self._relogin is None:
                    raise MatrixLoginError(
                        "the homeserver no longer accepts LOTSE_MATRIX_ACCESS_TOKEN; "
                        "set a new one (or LOTSE_MATRIX_PASSWORD)"
                    )
                log.warning("access token rejected; logging in again as the same device")
                await self._relogin()
            raise _SyncFailed(f"{response.status_code}: {response.message}")
        if not isinstance(response, SyncResponse):
            raise _SyncFailed(repr(response))
        batch = _Batch(str(response.next_batch))
        self._full_state_loaded = True
        await self._retry_joins()
        await self._on_invites(response, first)
        self._retry_undecrypted(batch)
        self._on_joined_rooms(response, first, batch)
        self._token = batch.token
        self._batches.append(batch)
        for task in batch.tasks:
            task.add_done_callback(lambda _task: self._save_token())
        self._save_token()
        await self._maintain_keys()

    def _save_token(self) -> None:
        """Save the newest token all of whose messages are answered (the watermark)."""
        token = None
        while self._batches and self._batches[0].done:
            token = self._batches.popleft().token
        if token is not None and token != self._saved_token:
            self.client.store.save_sync_token(token)
            self._saved_token = token

    async def _maintain_keys(self) -> None:
        """What `sync_forever` does between syncs: keys and to-device messages."""
        client = self.client
        if client.outgoing_to_device_messages:
            await client.send_to_device_messages()
        if client.should_upload_keys:
            await client.keys_upload()
        await self._query_keys()
        if client.should_claim_keys:
            await client.keys_claim(client.get_users_for_key_claiming())

    async def _query_keys(self) -> None:
        async with self._keys_lock:
            if self.client.should_query_keys:
                await self.client.keys_query()

    async def _drain(self) -> None:
        pending = [task for task in self._tasks if not task.done()]
        if pending:
            await asyncio.wait(pending, timeout=DRAIN_SECONDS)
        self._save_token()

    # --- invites -------------------------------------------------------------------------

    async def _on_invites(self, response: Any, first: bool) -> None:
        for room_id, info in response.rooms.invite.items():
            invite = next(
                (
                    event
                    for event in info.invite_state
                    if isinstance(event, InviteMemberEvent)
                    and event.state_key == self.user_id
                    and event.membership == "invite"
                ),
                None,
            )
            if invite is None:
                continue
            direct = bool(invite.content.get("is_direct"))
            if not direct and not self._allowed_room(room_id, self.client.invited_rooms):
                log.info("declining the invite to %s (not a direct chat, not allowed)", room_id)
                await _ignore_errors(self.client.room_leave(room_id), "declining an invite")
                continue
            if direct:
                self._fresh[room_id] = _FreshRoom(str(invite.sender), answer_messages=not first)
            await self._join(room_id, direct)

    async def _join(self, room_id: str, direct: bool) -> None:
        try:
            response = await self.client.join(room_id)
        except NETWORK_ERRORS as error:
            # The invite does not come again in later syncs: try again after the next one.
            log.warning("joining %s failed (%r); trying again", room_id, error)
            self._joins_to_retry[room_id] = direct
            return
        self._joins_to_retry.pop(room_id, None)
        if isinstance(response, ErrorResponse):  # withdrawn invite, room gone: nothing to do
            log.warning("could not join %s: %s", room_id, response)
            self._fresh.pop(room_id, None)

    async def _retry_joins(self) -> None:
        for room_id, direct in list(self._joins_to_retry.items()):
            await self._join(room_id, direct)

    def _allowed_room(self, room_id: str, rooms: dict[str, Any]) -> bool:
        if room_id in self.allowed or room_id == self.agent_room:
            return True
        room = rooms.get(room_id)
        return room is not None and room.canonical_alias in self.allowed

    def _serves(self, room: Any) -> bool:
        """Direct chats (the bot and one user) always; groups only when listed."""
        return bool(room.member_count <= 2) or self._allowed_room(room.room_id, self.client.rooms)

    # --- messages ------------------------------------------------------------------------

    def _on_joined_rooms(self, response: Any, first: bool, batch: _Batch) -> None:
        for room_id, info in response.rooms.join.items():
            room = self.client.rooms.get(room_id)
            fresh = self._fresh.pop(room_id, None)
            events: list[Any] = list(info.timeline.events)
            if fresh is not None:
                events = self._after_own_membership(events)
                if not fresh.answer_messages:
                    events = []
            elif first:
                continue  # the first start's backlog: not answered
            elif info.timeline.limited:
                log.warning(
                    "more than %d events in %s since the last sync", TIMELINE_LIMIT, room_id
                )
            if room is None or not self._serves(room):
                continue
            answered: set[str] = set()
            for event in events:
                try:
                    if self._on_event(room, event, batch):
                        answered.add(str(event.sender))
                except Exception:  # one odd event must not stop the others or the loop
                    log.exception("taking up event %s failed", getattr(event, "event_id", "?"))
            if fresh is not None and fresh.inviter not in answered:
                greeting = Inbound(CHANNEL, fresh.inviter, command="start")
                self._start(batch, room_id, fresh.inviter, greeting, event_id=None)

    def _after_own_membership(self, events: list[Any]) -> list[Any]:
        """In a room just joined, what came after the bot's invite; older history is not ours."""
        for index, event in enumerate(events):
            if isinstance(event, RoomMemberEvent) and event.state_key == self.user_id:
                return events[index + 1 :]
        return []

    def _on_event(self, room: Any, event: Any, batch: _Batch) -> bool:
        """Start answering one timeline event if it is a user's message; True if so."""
        if event.sender == self.user_id:
            return False
        if isinstance(event, MegolmEvent):  # still encrypted: the key has not arrived (yet)
            self._undecrypted.append(_Undecrypted(room.room_id, event, time.monotonic()))
            self._request_key(event)
            return False
        if not isinstance(event, RoomMessageText):
            return False  # notices (bots), images, files, state changes
        if room.room_id == self.agent_room:
            if self.on_agent_message is not None:
                batch.tasks.add(self._spawn(self.on_agent_message(event)))
            return False
        content: dict[str, Any] = event.source.get("content", {})
        if is_edit(content):
            return False
        text = message_text(content)
        if not text.strip():
            return False
        if room.member_count <= 2:
            self.rooms.remember(str(event.sender), room.room_id)
        command = parse_command(text)
        if command is not None:
            inbound = Inbound(
                CHANNEL, event.sender, command=command.name, argument=command.argument
            )
        else:
            inbound = Inbound(CHANNEL, event.sender, text=text)
        self._start(batch, room.room_id, str(event.sender), inbound, event_id=str(event.event_id))
        return True

    def _retry_undecrypted(self, batch: _Batch) -> None:
        """Messages that could not be decrypted: answered once their key has come."""
        waiting, self._undecrypted = self._undecrypted, []
        now = time.monotonic()
        for item in waiting:
            try:
                event = self.client.decrypt_event(item.event)
            except (EncryptionError, LocalProtocolError):
                if now - item.since < UNDECRYPTED_KEEP_SECONDS:
                    self._undecrypted.append(item)
                else:
                    log.warning("giving up on undecryptable message %s", item.event.event_id)
                continue
            room = self.client.rooms.get(item.room_id)
            if room is not None and self._serves(room):
                try:
                    self._on_event(room, event, batch)
                except Exception:
                    log.exception("taking up decrypted event %s failed", item.event.event_id)

    def _request_key(self, event: Any) -> None:
        async def request() -> None:
            with contextlib.suppress(LocalProtocolError):  # already asked for this session
                await self.client.request_room_key(event)

        log.info("cannot decrypt %s yet; asking for the key", event.event_id)
        self._spawn(_ignore_errors(request(), "requesting a room key"))

    def _start(
        self, batch: _Batch, room_id: str, user: str, inbound: Inbound, event_id: str | None
    ) -> None:
        batch.tasks.add(self._spawn(self._answer(room_id, user, inbound, event_id)))

    def _spawn(self, coroutine: Awaitable[None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _answer(
        self, room_id: str, user: str, inbound: Inbound, event_id: str | None
    ) -> None:
        # Tasks start in the order they were created and take the user's lock before any other
        # await, and asyncio.Lock is first come, first served: one user's messages keep order.
        async with self._locks[user]:
            try:
                if event_id is not None:  # on the side: the answer need not wait for it
                    self._spawn(
                        _ignore_errors(
                            self.client.room_read_markers(room_id, event_id, event_id),
                            "marking a message read",
                        )
                    )
                replies = await self.service.handle(inbound)
                await self.send(room_id, replies, event_id or uuid.uuid4().hex)
            except Exception:
                log.exception("answering a message in %s failed", room_id)

    # --- sending -------------------------------------------------------------------------

    async def send(self, room_id: str, replies: Iterable[Reply], reference: str) -> None:
        for index, reply in enumerate(replies):
            await self._send_one(room_id, reply_content(reply), transaction_id(reference, index))
            if reply.attachment is not None:  # a configuration profile, as an m.file
                content = await self._upload(room_id, reply.attachment)
                await self._send_one(room_id, content, transaction_id(reference, index) + "f")

    async def _upload(self, room_id: str, attachment: Attachment) -> dict[str, Any]:
        room = self.client.rooms.get(room_id)
        encrypted = bool(room is not None and room.encrypted)
        response, keys = await self.client.upload(
            io.BytesIO(attachment.content),
            content_type=attachment.media_type,
            filename=attachment.filename,
            encrypt=encrypted,  # in an encrypted room the file is encrypted too
            filesize=len(attachment.content),
        )
        if not isinstance(response, UploadResponse):
            raise RuntimeError(f"upload to {room_id} refused: {response}")
        info = {"mimetype": attachment.media_type, "size": len(attachment.content)}
        content: dict[str, Any] = {
            "msgtype": "m.file",
            "body": attachment.filename,
            "filename": attachment.filename,
            "info": info,
        }
        if encrypted and keys:
            content["file"] = {**keys, "url": response.content_uri}
        else:
            content["url"] = response.content_uri
        return content

    async def send_content(self, room_id: str, content: dict[str, Any], txn_id: str) -> str:
        """Send one `m.room.message` as it is (the agents' room); its event id."""
        return await self._send_one(room_id, content, txn_id)

    async def _send_one(self, room_id: str, content: dict[str, Any], txn_id: str) -> str:
        backoff = Backoff()
        for attempt in range(1, SEND_ATTEMPTS + 1):
            try:
                room = self.client.rooms.get(room_id)
                if room is not None and room.encrypted:
                    await self._trust_devices(room)
                response = await self.client.room_send(
                    room_id, "m.room.message", content, tx_id=txn_id
                )
            except OlmUnverifiedDeviceError as error:  # a device came up since we looked
                log.info("device %s appeared while sending", error.device.id)
                continue
            except NETWORK_ERRORS as error:
                if attempt == SEND_ATTEMPTS:
                    raise
                delay = backoff.next_delay()
                log.warning("sending failed (%r); retrying in %.1f s", error, delay)
                await asyncio.sleep(delay)
                continue
            if isinstance(response, ErrorResponse):  # 429s never get here: nio waits and retries
                raise RuntimeError(f"sending to {room_id} refused: {response}")
            return str(response.event_id)
        raise RuntimeError(f"sending to {room_id} failed {SEND_ATTEMPTS} times")

    async def _trust_devices(self, room: Any) -> None:
        """Trust on first use: every device of the room's members not seen before is verified."""
        client = self.client
        if not room.members_synced:
            await client.joined_members(room.room_id)
        await self._query_keys()
        for user_id in list(room.users):
            for device in client.device_store.active_user_devices(user_id):
                if not device.verified and not device.blacklisted:
                    # The Matrix ID names a person: DEBUG only (no personal data at INFO).
                    log.debug("trusting device %s of %s on first use", device.id, user_id)
                    client.verify_device(device)


class _SyncFailed(Exception):
    pass


async def _ignore_errors(call: Awaitable[Any], what: str) -> None:
    """For side matters (read markers, key requests): a failure is logged, never raised."""
    try:
        response = await call
    except (*NETWORK_ERRORS, LocalProtocolError) as error:
        log.warning("%s failed: %r", what, error)
        return
    if isinstance(response, ErrorResponse):
        log.warning("%s failed: %s", what, response)


# --- logging in ----------------------------------------------------------------------------


def new_client(settings: Settings) -> Any:
    """An nio client with its store in `LOTSE_MATRIX_STORE_DIR`, not logged in yet."""
    assert settings.matrix_homeserver and settings.matrix_user and settings.matrix_store_dir
    store = settings.matrix_store_dir
    store.mkdir(parents=True, exist_ok=True)
    store.chmod(0o700)  # encryption keys and the access token live here
    config = AsyncClientConfig(
        encryption_enabled=True,
        store_sync_tokens=False,  # nio would save the token before the events are handled
        max_timeouts=0,  # connection errors come to `MatrixChannel.run`, which backs off
        max_limit_exceeded=None,  # 429: wait as long as the server says, as often as it says
    )
    return AsyncClient(
        settings.matrix_homeserver, settings.matrix_user, store_path=str(store), config=config
    )


async def log_in(client: Any, settings: Settings) -> Session:
    """Restore the saved session, or log in (password) / adopt the access token once.

    A new device is created only when there is no saved session for this user and homeserver.
    """
    assert settings.matrix_homeserver and settings.matrix_user and settings.matrix_store_dir
    path = settings.matrix_store_dir / SESSION_FILE
    token = (
        settings.matrix_access_token.get_secret_value() if settings.matrix_access_token else None
    )
    saved = Session.load(path)
    if (
        saved is not None
        and saved.homeserver == settings.matrix_homeserver
        and saved.user_id == settings.matrix_user
        and (token is None or token == saved.access_token)
    ):
        client.restore_login(saved.user_id, saved.device_id, saved.access_token)
        return saved
    if token is not None:
        client.access_token = token
        whoami = await client.whoami()
        if not isinstance(whoami, WhoamiResponse):
            raise MatrixLoginError(f"LOTSE_MATRIX_ACCESS_TOKEN was refused: {whoami}")
        if whoami.user_id != settings.matrix_user or not whoami.device_id:
            raise MatrixLoginError(
                f"LOTSE_MATRIX_ACCESS_TOKEN belongs to {whoami.user_id} "
                f"(device {whoami.device_id}), not to LOTSE_MATRIX_USER={settings.matrix_user}"
            )
        client.restore_login(whoami.user_id, whoami.device_id, token)
    else:
        await _password_login(client, settings)
    session = Session(
        settings.matrix_homeserver, client.user_id, client.device_id, client.access_token
    )
    session.save(path)
    return session


async def _password_login(client: Any, settings: Settings) -> None:
    assert settings.matrix_password is not None
    # With `client.device_id` set (a re-login) the homeserver keeps that device and its keys.
    response = await client.login(settings.matrix_password.get_secret_value(), DEVICE_NAME)
    if not isinstance(response, LoginResponse):
        raise MatrixLoginError(f"logging in as {settings.matrix_user} failed: {response}")


class MatrixRunner:
    """The Matrix channel (`bot.channels.base.Channel`) on the caller's event loop.

    `start` logs in (restoring the saved device), uploads keys, connects `attach` (given by
    whoever composes the process: the agents' room) and syncs in the background until `stop`;
    a sync loop that ends with an error is reported to `on_failure`.
    """

    name = CHANNEL
    needs_lease = True  # one sync stream and one device per account

    def __init__(
        self,
        settings: Settings,
        service: ConversationService,
        *,
        attach: Callable[[MatrixRunner], Awaitable[Stopper]] | None = None,
    ) -> None:
        self.settings = settings
        self.service = service
        self._attach = attach
        self._detach: Stopper | None = None
        self.client: Any = None
        self.channel: MatrixChannel | None = None
        self._task: asyncio.Task[None] | None = None

    @staticmethod
    def configured(settings: Settings) -> bool:
        return bool(settings.matrix_homeserver)

    @staticmethod
    def configuration_problem(settings: Settings) -> str | None:
        return configuration_problem(settings)

    @property
    def detail(self) -> str | None:
        return None

    async def start(self, on_failure: OnFailure) -> None:
        settings = self.settings
        client = self.client = new_client(settings)
        session = await log_in(client, settings)
        log.info("logged in as %s, device %s", session.user_id, session.device_id)
        if client.should_upload_keys:  # so users can encrypt for the bot before its first reply
            await client.keys_upload()
        relogin = None
        if settings.matrix_password is not None:

            async def relogin() -> None:
                await _password_login(client, settings)
                assert settings.matrix_homeserver and settings.matrix_store_dir
                Session(
                    settings.matrix_homeserver,
                    client.user_id,
                    client.device_id,
                    client.access_token,
                ).save(settings.matrix_store_dir / SESSION_FILE)

        store = settings.matrix_store_dir
        self.channel = MatrixChannel(
            client,
            self.service,
            allowed=allowed_rooms(settings.matrix_allowed_rooms),
            relogin=relogin,
            direct_rooms=store / DIRECT_ROOMS_FILE if store else None,
        )
        if self._attach is not None:
            self._detach = await self._attach(self)
        self._task = asyncio.create_task(self.channel.run(), name=CHANNEL)

        def ended(task: asyncio.Task[None]) -> None:
            if not task.cancelled():
                on_failure(task.exception() or RuntimeError("the Matrix channel ended"))

        self._task.add_done_callback(ended)

    async def stop(self, within: float) -> None:
        # Cancelling ends the sync; the channel then lets its answers under way finish.
        try:
            if self._task is not None:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(self._task, within)
        finally:
            if self._detach is not None:
                await self._detach(within)
            if self.client is not None:
                await self.client.close()

    async def send(self, user: str, replies: list[Reply]) -> None:
        """To the user's direct chat (LookupError without one)."""
        assert self.channel is not None
        room = self.channel.rooms.find(user)
        if room is None:
            raise LookupError("no direct chat with this Matrix user")
        await self.channel.send(room, replies, uuid.uuid4().hex)


def configuration_problem(settings: Settings) -> str | None:
    if not settings.matrix_homeserver or not settings.matrix_homeserver.startswith(
        ("http://", "https://")
    ):
        return "LOTSE_MATRIX_HOMESERVER: the homeserver's URL, e.g. https://matrix.uni.example"
    user = settings.matrix_user or ""
    if not (user.startswith("@") and ":" in user):
        return "LOTSE_MATRIX_USER: the bot's full Matrix ID, e.g. @lotse:uni.example"
    password = settings.matrix_password.get_secret_value() if settings.matrix_password else ""
    token = settings.matrix_access_token.get_secret_value() if settings.matrix_access_token else ""
    if not password and not token:
        return "LOTSE_MATRIX_PASSWORD or LOTSE_MATRIX_ACCESS_TOKEN is required."
    if settings.matrix_store_dir is None:
        return (
            "LOTSE_MATRIX_STORE_DIR is required: it keeps the device, the sync position and the "
            "encryption keys across restarts."
        )
    return None
