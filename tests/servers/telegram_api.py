"""A fake Telegram Bot API server on loopback (pytest plugin, see `tests/conftest.py`).

Telegram's servers cannot be reached from here, so this is the one fake in the suite. The real
python-telegram-bot `Application` talks to it through `base_url` ("http://127.0.0.1:PORT/bot").
It behaves like the Bot API where Lotse relies on it:

- every call is `POST /bot<token>/<method>` with form fields (JSON-encoded values) and is
  recorded in `calls`;
- `getUpdates` long-polls: it returns updates with `update_id >= offset`, confirms (drops) the
  ones below a positive offset, and waits up to `timeout` seconds for new ones;
- `sendMessage` returns a full Message; with `parse_mode=HTML` the text is parsed like Telegram
  does (only its tags, `&` only in entities), and a message over 4096 characters or a button
  with more than 64 bytes of callback data is refused with 400;
- editing a message's keyboard to what it already is gives "message is not modified" (400).

Tests act as users with `user_message` and `user_taps` (updates for `getUpdates`), or build an
update with `message_update` to POST it to a webhook. They make the API fail with `fail`
(e.g. 429 with `retry_after`), `disconnect` (the connection drops) and `blocked_chats` (403).
"""

from __future__ import annotations

import asyncio
import html
import itertools
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

BOT_USER: dict[str, Any] = {
    "id": 4242,
    "is_bot": True,
    "first_name": "Lotse",
    "username": "LotseTestBot",
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}
TOKEN = "4242:test-token"

# Form fields that carry numbers or JSON; everything else (e.g. `text`) is a plain string.
_NUMBER_FIELDS = {"chat_id", "offset", "limit", "timeout", "message_id", "max_connections"}
_JSON_FIELDS = {"reply_markup", "commands", "allowed_updates", "scope", "link_preview_options"}
_JSON_FIELDS |= {"reply_parameters"}

_HTML_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler"}
_HTML_TAGS |= {"a", "code", "pre", "blockquote", "tg-emoji"}
_TAG = re.compile(r"<(/?)([a-zA-Z-]+)(?:\s[^<>]*)?>")
_ENTITY = re.compile(r"&(?:lt|gt|amp|quot|#[0-9]+|#x[0-9a-fA-F]+);")
_COMMAND = re.compile(r"[a-z0-9_]{1,32}")


class ApiError(Exception):
    """An error answer of the Bot API: `{"ok": false, "error_code": ..., "description": ...}`."""

    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after


@dataclass(frozen=True)
class ApiCall:
    method: str
    params: dict[str, Any]


@dataclass(frozen=True)
class FakeUser:
    id: int
    first_name: str = "Anna"
    language_code: str | None = "de"

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.language_code:
            data["language_code"] = self.language_code
        return data


@dataclass
class _Failure:
    code: int
    description: str
    retry_after: int | None
    remaining: int
    disconnect: bool = False


@dataclass
class SentMessage:
    """A message the bot sent, as the user sees it (`text` without the HTML markup)."""

    chat_id: int
    message_id: int
    text: str
    html: str | None
    data: dict[str, Any]  # the Message object as returned to the bot
    deleted: bool = False  # the bot deleted it (deleteMessage): gone from the chat

    @property
    def buttons(self) -> list[tuple[str, str]]:
        """(label, callback data) of the inline keyboard the message has now."""
        markup = self.data.get("reply_markup") or {}
        return [
            (button["text"], button["callback_data"])
            for row in markup.get("inline_keyboard", [])
            for button in row
        ]


@dataclass(repr=False)
class FakeTelegram:
    token: str = TOKEN
    calls: list[ApiCall] = field(default_factory=list)
    sent: list[SentMessage] = field(default_factory=list)
    commands: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # by language
    webhook: dict[str, Any] | None = None
    blocked_chats: set[int] = field(default_factory=set)
    max_poll_wait: float = 0.25  # seconds; caps the long-poll timeout so bots stop quickly
    delays: dict[str, float] = field(default_factory=dict)  # method -> seconds before answering

    def __post_init__(self) -> None:
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)
        self._query_ids = itertools.count(1)
        self._messages: dict[tuple[int, int], SentMessage] = {}
        self._chats: dict[int, dict[str, Any]] = {}
        self._failures: dict[str, list[_Failure]] = {}
        self.documents: list[tuple[int, str, bytes]] = []  # (chat id, file name, content)
        self._arrived = asyncio.Event()
        self._changed = asyncio.Event()  # set, and replaced, whenever a call came or ended
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._methods: dict[str, Callable[[dict[str, Any]], Awaitable[Any]]] = {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "deleteWebhook": self._delete_webhook,
            "setWebhook": self._set_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "sendMessage": self._send_message,
            "sendDocument": self._send_document,
            "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "answerCallbackQuery": self._answer_callback_query,
            "deleteMessage": self._delete_message,
            "setMyCommands": self._set_my_commands,
            "sendChatAction": self._true,
            "close": self._true,
        }

    def __repr__(self) -> str:  # short, for pytest's failure reports
        return f"FakeTelegram({self.base_url}, {len(self.calls)} calls, {len(self.sent)} sent)"

    # --- server ------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        if request.match_info["token"] != self.token:
            return _error(ApiError(401, "Unauthorized"))
        form = await request.post()
        params = {key: _decode(key, value) for key, value in form.items() if isinstance(value, str)}
        # Uploaded files (sendDocument) as (file name, content).
        params.update(
            {
                key: (value.filename, value.file.read())
                for key, value in form.items()
                if isinstance(value, web.FileField)
            }
        )
        self.calls.append(ApiCall(method, params))
        self._note_change()
        try:
            return await self._answer(request, method, params)
        finally:
            self._note_change()

    async def _answer(
        self, request: web.Request, method: str, params: dict[str, Any]
    ) -> web.StreamResponse:
        await asyncio.sleep(self.delays.get(method, 0))  # a slow network or Bot API
        failure = self._take_failure(method)
        if failure is not None and failure.disconnect:
            assert request.transport is not None
            request.transport.close()  # the client sees the connection drop mid-request
            return web.Response()
        if failure is not None:
            return _error(ApiError(failure.code, failure.description, failure.retry_after))
        handler = self._methods.get(method)
        if handler is None:
            return _error(ApiError(404, "Not Found: method not found"))
        try:
            result = await handler(params)
        except ApiError as error:
            return _error(error)
        return web.json_response({"ok": True, "result": result})

    # --- switches for tests ------------------------------------------------------------

    def fail(
        self,
        method: str,
        *,
        code: int = 429,
        times: int = 1,
        retry_after: int | None = 1,
        description: str | None = None,
    ) -> None:
        """Answer the next `times` calls of `method` with an error (429 unless `code` says)."""
        text = description or (
            f"Too Many Requests: retry after {retry_after}" if code == 429 else "Error"
        )
        retry = retry_after if code == 429 else None
        self._failures.setdefault(method, []).append(_Failure(code, text, retry, times))

    def disconnect(self, method: str, *, times: int = 1) -> None:
        """Drop the connection on the next `times` calls of `method` (a network error)."""
        self._failures.setdefault(method, []).append(_Failure(0, "", None, times, True))

    def _take_failure(self, method: str) -> _Failure | None:
        pending = self._failures.get(method)
        if not pending:
            return None
        failure = pending[0]
        failure.remaining -= 1
        if failure.remaining <= 0:
            pending.pop(0)
        return failure

    # --- users' side -------------------------------------------------------------------

    def private_chat(self, user: FakeUser) -> dict[str, Any]:
        chat = {"id": user.id, "type": "private", "first_name": user.first_name}
        self._chats[user.id] = chat
        return chat

    def group_chat(self, chat_id: int, title: str = "Helpdesk-Gruppe") -> dict[str, Any]:
        chat = {"id": chat_id, "type": "supergroup", "title": title}
        self._chats[chat_id] = chat
        return chat

    def message_update(
        self,
        user: FakeUser,
        text: str,
        chat: dict[str, Any] | None = None,
        reply_to: SentMessage | None = None,
    ) -> dict[str, Any]:
        """An update for a message the user writes (not queued: for posting to a webhook).

        `reply_to`: the bot's message this one answers (Telegram's "Reply").
        """
        chat = chat or self.private_chat(user)
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": chat,
            "from": user.as_json(),
            "text": text,
        }
        if reply_to is not None:
            message["reply_to_message"] = reply_to.data
        if text.startswith("/"):  # Telegram marks commands; CommandHandler relies on it
            command = text.split()[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return {"update_id": next(self._update_ids), "message": message}

    def user_message(
        self,
        user: FakeUser,
        text: str,
        chat: dict[str, Any] | None = None,
        reply_to: SentMessage | None = None,
    ) -> dict[str, Any]:
        """The user writes `text`; the bot gets it with its next `getUpdates`."""
        update = self.message_update(user, text, chat, reply_to)
        self._queue(update)
        return update

    def user_sends_photo(self, user: FakeUser) -> None:
        """A photo without caption (a screenshot, say): a message with no text."""
        update = self.message_update(user, "")
        del update["message"]["text"]
        update["message"]["photo"] = [
            {"file_id": "photo-1", "file_unique_id": "p1", "width": 640, "height": 480}
        ]
        self._queue(update)

    def user_taps(self, user: FakeUser, message: SentMessage, data: str) -> str:
        """The user taps the button with this callback data; returns the callback query id."""
        query_id = f"q{next(self._query_ids)}"
        query = {
            "id": query_id,
            "from": user.as_json(),
            "message": message.data,
            "chat_instance": f"instance-{message.chat_id}",
            "data": data,
        }
        self._queue({"update_id": next(self._update_ids), "callback_query": query})
        return query_id

    def _queue(self, update: dict[str, Any]) -> None:
        self._updates.append(update)
        self._arrived.set()  # wakes every waiting getUpdates
        self._arrived = asyncio.Event()

    def _note_change(self) -> None:
        """Wake every `wait_for`: what the API saw or holds may have changed."""
        self._changed.set()
        self._changed = asyncio.Event()

    # --- what the bot did --------------------------------------------------------------

    def calls_to(self, method: str) -> list[ApiCall]:
        return [call for call in self.calls if call.method == method]

    def messages_to(self, chat_id: int) -> list[SentMessage]:
        return [message for message in self.sent if message.chat_id == chat_id]

    def pending_updates(self) -> int:
        return len(self._updates)

    async def wait_for(
        self, condition: Callable[[], bool], what: str, within: float = 15.0
    ) -> None:
        """Wait until `condition()` (on what the API saw) holds, looking again after each
        call; fail with `what` after `within` seconds."""
        try:
            async with asyncio.timeout(within):
                while not condition():
                    await self._changed.wait()
        except TimeoutError:
            recent = [(m.chat_id, m.text[:60]) for m in self.sent[-5:]]
            pytest.fail(f"timed out waiting for {what}; last messages sent: {recent}")

    # --- the API methods ---------------------------------------------------------------

    async def _true(self, _params: dict[str, Any]) -> bool:
        return True

    async def _get_me(self, _params: dict[str, Any]) -> dict[str, Any]:
        return BOT_USER

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        if self.webhook is not None:
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active")
        offset = int(params.get("offset", 0))
        limit = int(params.get("limit", 100))
        if offset > 0:  # confirms every update before it
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
            self._note_change()
        wait = min(float(params.get("timeout", 0)), self.max_poll_wait)
        deadline = time.monotonic() + wait
        while True:
            ready = [u for u in self._updates if u["update_id"] >= offset][:limit]
            remaining = deadline - time.monotonic()
            if ready or remaining <= 0:
                return ready
            with suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)

    async def _delete_webhook(self, params: dict[str, Any]) -> bool:
        self.webhook = None
        if params.get("drop_pending_updates") == "true":
            self._updates.clear()
        return True

    async def _set_webhook(self, params: dict[str, Any]) -> bool:
        self.webhook = params
        return True

    async def _get_webhook_info(self, _params: dict[str, Any]) -> dict[str, Any]:
        url = (self.webhook or {}).get("url", "")
        return {"url": url, "has_custom_certificate": False, "pending_update_count": 0}

    async def _send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = int(params["chat_id"])
        if chat_id in self.blocked_chats:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        raw = str(params["text"])
        text = _parse_html(raw) if params.get("parse_mode") == "HTML" else raw
        _check_text(text)
        markup = params.get("reply_markup")
        _check_markup(markup)
        chat = self._chats.get(chat_id, {"id": chat_id, "type": "private", "first_name": "?"})
        data: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": chat,
            "from": BOT_USER,
            "text": text,
        }
        if markup:
            data["reply_markup"] = markup
        replied = (params.get("reply_parameters") or {}).get("message_id")
        if replied is not None and (chat_id, int(replied)) in self._messages:
            data["reply_to_message"] = dict(self._messages[(chat_id, int(replied))].data)
        html_text = raw if params.get("parse_mode") == "HTML" else None
        message = SentMessage(chat_id, data["message_id"], text, html_text, data)
        self.sent.append(message)
        self._messages[(chat_id, message.message_id)] = message
        return data

    async def _send_document(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = int(params["chat_id"])
        if chat_id in self.blocked_chats:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        filename, content = params["document"]
        self.documents.append((chat_id, filename, content))
        return {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": self._chats.get(chat_id, {"id": chat_id, "type": "private", "first_name": "?"}),
            "from": BOT_USER,
            "document": {"file_id": f"doc{len(self.documents)}", "file_unique_id": "u",
                         "file_name": filename, "file_size": len(content)},
        }  # fmt: skip

    def _message(self, params: dict[str, Any]) -> SentMessage:
        message = self._messages.get((int(params["chat_id"]), int(params["message_id"])))
        if message is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        return message

    async def _edit_message_reply_markup(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._message(params)
        markup = params.get("reply_markup") or None
        _check_markup(markup)
        if markup == message.data.get("reply_markup"):
            raise ApiError(400, "Bad Request: message is not modified")
        if markup:
            message.data["reply_markup"] = markup
        else:
            message.data.pop("reply_markup", None)
        return message.data

    async def _edit_message_text(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._message(params)
        raw = str(params["text"])
        text = _parse_html(raw) if params.get("parse_mode") == "HTML" else raw
        _check_text(text)
        markup = params.get("reply_markup") or None
        if text == message.text and markup == message.data.get("reply_markup"):
            raise ApiError(400, "Bad Request: message is not modified")
        message.text = message.data["text"] = text
        message.html = raw if params.get("parse_mode") == "HTML" else None
        if markup:
            message.data["reply_markup"] = markup
        else:
            message.data.pop("reply_markup", None)
        return message.data

    async def _delete_message(self, params: dict[str, Any]) -> bool:
        message = self._messages.get((int(params["chat_id"]), int(params["message_id"])))
        if message is None or message.deleted:
            raise ApiError(400, "Bad Request: message to delete not found")
        message.deleted = True
        return True

    async def _answer_callback_query(self, params: dict[str, Any]) -> bool:
        if not str(params.get("callback_query_id", "")).startswith("q"):
            raise ApiError(400, "Bad Request: query is too old and response timeout expired")
        return True

    async def _set_my_commands(self, params: dict[str, Any]) -> bool:
        commands = params["commands"]
        for command in commands:
            if not _COMMAND.fullmatch(command["command"]):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(command["description"]) <= 256:
                raise ApiError(400, "Bad Request: command description is invalid")
        self.commands[params.get("language_code", "")] = commands
        return True


@dataclass(repr=False)
class TelegramChat:
    """One user's view of a chat with the bot: write, tap, and read what came back.

    A turn ends when a message with buttons arrives (every question offers options), unless
    the caller says what to wait for with `until`.
    """

    api: FakeTelegram
    user: FakeUser
    chat: dict[str, Any] | None = None
    seen: int = 0  # messages to this chat already returned by `say` or `tap`
    last: list[SentMessage] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"TelegramChat(user={self.user.id}, chat={self.chat_id}, last={self.text!r})"

    @property
    def chat_id(self) -> int:
        return int(self.chat["id"]) if self.chat else self.user.id

    @property
    def text(self) -> str:
        """The text of the messages of the last turn."""
        return "\n".join(message.text for message in self.last)

    def unseen(self) -> list[SentMessage]:
        return self.api.messages_to(self.chat_id)[self.seen :]

    def send(self, text: str, reply_to: SentMessage | None = None) -> None:
        """Write without waiting for the answer (`reply_to`: as a reply to the bot's message)."""
        self.api.user_message(self.user, text, self.chat, reply_to)

    async def say(
        self, text: str, until: Callable[[list[SentMessage]], bool] | None = None
    ) -> list[SentMessage]:
        self.send(text)
        return await self.replies(until, f"the answer to {text!r}")

    def button(self, label: str) -> tuple[SentMessage, str]:
        """The latest message with a button labelled `label`, and the button's callback data."""
        for message in reversed(self.api.messages_to(self.chat_id)):
            for button_label, data in message.buttons:
                if button_label == label:
                    return message, data
        raise AssertionError(f"no button {label!r} in the chat")

    def press(self, label: str, message: SentMessage | None = None) -> str:
        """Tap without waiting; returns the callback query id."""
        found, data = self.button(label)
        return self.api.user_taps(self.user, message or found, data)

    async def tap(
        self, label: str, until: Callable[[list[SentMessage]], bool] | None = None
    ) -> list[SentMessage]:
        self.press(label)
        return await self.replies(until, f"the answer to a tap on {label!r}")

    async def replies(
        self, until: Callable[[list[SentMessage]], bool] | None = None, what: str = "replies"
    ) -> list[SentMessage]:
        done = until or (lambda messages: any(message.buttons for message in messages))
        await self.api.wait_for(lambda: done(self.unseen()), what)
        self.last = self.unseen()
        self.seen += len(self.last)
        return self.last


def mentions(text: str) -> Callable[[list[SentMessage]], bool]:
    """`until` for `TelegramChat.say`: wait for a message containing `text`."""
    return lambda messages: any(text in message.text for message in messages)


def _decode(key: str, value: str) -> Any:
    if key in _NUMBER_FIELDS:
        return json.loads(value)
    if key in _JSON_FIELDS:
        return json.loads(value)
    return value


def _error(error: ApiError) -> web.Response:
    body: dict[str, Any] = {
        "ok": False,
        "error_code": error.code,
        "description": error.description,
    }
    if error.retry_after is not None:
        body["parameters"] = {"retry_after": error.retry_after}
    return web.json_response(body, status=error.code)


def _utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _check_text(text: str) -> None:
    if not text.strip():
        raise ApiError(400, "Bad Request: message text is empty")
    if _utf16_length(text) > 4096:
        raise ApiError(400, "Bad Request: message is too long")


def _check_markup(markup: dict[str, Any] | None) -> None:
    for row in (markup or {}).get("inline_keyboard", []):
        for button in row:
            data = button.get("callback_data", "")
            if not 1 <= len(data.encode("utf-8")) <= 64:
                raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")


def _parse_html(text: str) -> str:
    """The text a user sees, parsed the way Telegram parses `parse_mode=HTML` (strictly)."""
    plain: list[str] = []
    open_tags: list[str] = []
    index = 0
    while index < len(text):
        character = text[index]
        if character == "<":
            tag = _TAG.match(text, index)
            if tag is None or tag.group(2).lower() not in _HTML_TAGS:
                raise ApiError(
                    400, f"Bad Request: can't parse entities: unsupported tag at offset {index}"
                )
            name = tag.group(2).lower()
            if tag.group(1):
                if not open_tags or open_tags.pop() != name:
                    raise ApiError(400, f"Bad Request: can't parse entities: unmatched </{name}>")
            else:
                open_tags.append(name)
            index = tag.end()
        elif character == "&":
            entity = _ENTITY.match(text, index)
            if entity is None:
                raise ApiError(
                    400, f"Bad Request: can't parse entities: unescaped '&' at offset {index}"
                )
            plain.append(html.unescape(entity.group()))
            index = entity.end()
        elif character == ">":
            raise ApiError(400, f"Bad Request: can't parse entities: unescaped '>' at {index}")
        else:
            plain.append(character)
            index += 1
    if open_tags:
        raise ApiError(400, f"Bad Request: can't parse entities: unclosed <{open_tags[-1]}>")
    return "".join(plain)


@pytest.fixture
async def telegram_api() -> AsyncIterator[FakeTelegram]:
    """A fresh fake Bot API server per test (starting one takes a few milliseconds)."""
    server = FakeTelegram()
    await server.start()
    yield server
    await server.stop()
