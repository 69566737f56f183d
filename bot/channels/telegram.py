"""The Telegram channel, `lotse telegram` (python-telegram-bot 22).

Translates Telegram updates into `Inbound`s for the conversation service and its replies into
messages: HTML text (escaped, split at 4096 characters) with options as inline keyboards.
The user is their Telegram user id in a private chat, and "<group id>:<user id>" in a group
(`conversation_key`): each member of an allowed group has a conversation of their own there,
apart from their private one; buttons in a group carry whose question they answer, and a tap
by another member is refused without touching the keyboard. The chat is where the answer goes.

- Long polling by default; with `LOTSE_TELEGRAM_WEBHOOK_URL` a webhook that checks Telegram's
  secret token header (several instances behind a load balancer share the work).
- Updates of one user are handled one after another in the order they came
  (`PerUserOrder`), different users concurrently; a failing update is logged and the user told,
  the others go on.
- Flood control (429) is retried by `AIORateLimiter`, network errors by `with_retries`; a user
  who blocked the bot (403) is marked in the store and gets nothing until they write again.
- Everything lives in the database, so a restarted bot continues every conversation.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from contextlib import suppress
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlsplit

from telegram import Bot, BotCommand, CallbackQuery, Chat, Update, User
from telegram.constants import ChatType, ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    ApplicationHandlerStop,
    BaseUpdateProcessor,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot.channels.base import OnFailure, Stopper
from bot.channels.telegram_format import button_owner, option_for, render_reply
from bot.commands import COMMANDS, menu
from bot.config import Settings
from bot.conversation import ConversationService
from bot.engine.decision import Reply
from bot.i18n import SOURCE_LOCALE, SUPPORTED_LOCALES, Translator, pick_locale, translator
from bot.locks import KeyedLocks
from bot.retry import Backoff, retry
from bot.turns import Inbound

__all__ = [
    "ALLOWED_UPDATES",
    "CHANNEL",
    "DEEP_LINK_PAYLOAD",
    "NETWORK_ATTEMPTS",
    "NETWORK_BACKOFF",
    "POLL_TIMEOUT",
    "RATE_LIMIT_RETRIES",
    "WEBHOOK_SECRET",
    "AnyApplication",
    "AppHook",
    "Context",
    "PerUserOrder",
    "TelegramChannel",
    "TelegramRunner",
    "allowed_groups",
    "build_application",
    "chat_of",
    "command_menu",
    "conversation_key",
    "deep_link_argument",
    "with_retries",
]

CHANNEL = "telegram"
# What Telegram allows in a `t.me/<bot>?start=PAYLOAD` deep link.
DEEP_LINK_PAYLOAD = re.compile(r"[A-Za-z0-9_-]{1,64}")
# What Telegram accepts as a webhook's secret token (sent back in a header with every update).
WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")
ALLOWED_UPDATES = [Update.MESSAGE, Update.CALLBACK_QUERY]
POLL_TIMEOUT = 30  # seconds a getUpdates call waits for news (long polling)
RATE_LIMIT_RETRIES = 3  # 429s in a row before a request is given up
NETWORK_ATTEMPTS = 4
NETWORK_BACKOFF = 0.5  # seconds, doubled after every failed attempt

log = logging.getLogger(__name__)
T = TypeVar("T")
Context = ContextTypes.DEFAULT_TYPE
AnyApplication = Application[Any, Any, Any, Any, Any, Any]
AppHook = Callable[[AnyApplication], Coroutine[Any, Any, None]]


def command_menu(tr: Translator) -> list[BotCommand]:
    """The command menu next to the input field, in one language."""
    return [BotCommand(name, description) for name, description in menu(tr)]


def conversation_key(chat: Chat, user: User) -> str:
    """The conversation's user id: the Telegram user's id in a private chat, as it always was,
    and "<chat id>:<user id>" in a group, so a conversation there is the group's and hers."""
    if chat.type == ChatType.PRIVATE:
        return str(user.id)
    return f"{chat.id}:{user.id}"


def chat_of(key: str) -> int:
    """Where a conversation's messages go: the private chat (the user's id) or the group."""
    return int(key.partition(":")[0])


def _owner(key: str) -> int | None:
    """The user a group conversation belongs to; None in a private chat."""
    _chat, colon, user = key.partition(":")
    return int(user) if colon else None


def deep_link_argument(args: Sequence[str]) -> str | None:
    """The `/start` payload if it is one Telegram could have sent; else None (a plain start)."""
    if len(args) == 1 and DEEP_LINK_PAYLOAD.fullmatch(args[0]):
        return args[0]
    return None


class PerUserOrder(BaseUpdateProcessor):
    """Updates of one user one after another, in the order they arrived; others concurrently.

    The application starts a task per update in arrival order, and each task reaches the
    user's lock without waiting on anything before it; `asyncio.Lock` wakes waiters first in,
    first out, so a user's updates keep their order even while other users' run in between.
    """

    def __init__(self, max_concurrent_updates: int = 256) -> None:
        super().__init__(max_concurrent_updates)
        self._locks: KeyedLocks[int] = KeyedLocks()

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        user = update.effective_user if isinstance(update, Update) else None
        if user is None:
            await coroutine
            return
        async with self._locks[user.id]:
            await coroutine

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass


async def with_retries(call: Callable[[], Awaitable[T]]) -> T:
    """Retry a Bot API call on network errors (429s are the rate limiter's job).

    A refused request (400 BadRequest, which PTB derives from NetworkError) is not retried.
    """
    return await retry(
        call,
        retry_on=_network_trouble,
        what="Telegram",
        attempts=NETWORK_ATTEMPTS,
        backoff=Backoff(NETWORK_BACKOFF, maximum=NETWORK_BACKOFF * 8),
    )


def _network_trouble(error: Exception) -> bool:
    return isinstance(error, NetworkError) and not isinstance(error, BadRequest)


class TelegramChannel:
    """The handlers: updates in, `ConversationService.handle`, messages out."""

    def __init__(
        self, service: ConversationService, *, allowed_groups: frozenset[int] = frozenset()
    ) -> None:
        self.service = service
        self.allowed_groups = allowed_groups

    def install(self, app: AnyApplication) -> None:
        # Group -1 runs first: updates from chats the bot does not serve stop there.
        app.add_handler(TypeHandler(Update, self._gate), group=-1)
        only_new = filters.UpdateType.MESSAGE  # edited messages are not answered again
        app.add_handler(CommandHandler(COMMANDS, self._on_command, filters=only_new))
        # Unknown "/words" too: the service tells the user which commands it knows.
        app.add_handler(MessageHandler(only_new & filters.COMMAND, self._on_command))
        app.add_handler(CallbackQueryHandler(self._on_tap))
        app.add_handler(MessageHandler(only_new & filters.TEXT, self._on_text))
        app.add_handler(
            MessageHandler(only_new & ~filters.TEXT & ~filters.StatusUpdate.ALL, self._on_other)
        )
        app.add_error_handler(self._on_error)

    async def register_commands(self, bot: Bot) -> None:
        """The command menu in German (for everyone) and in every other language we speak."""
        await bot.set_my_commands(command_menu(translator(SOURCE_LOCALE)))
        for locale in SUPPORTED_LOCALES:
            if locale != SOURCE_LOCALE:
                await bot.set_my_commands(command_menu(translator(locale)), language_code=locale)

    # --- handlers ----------------------------------------------------------------------

    def serves(self, chat: Chat) -> bool:
        return chat.type == ChatType.PRIVATE or chat.id in self.allowed_groups

    async def _gate(self, update: Update, _context: Context) -> None:
        user, chat = update.effective_user, update.effective_chat
        if user is None or chat is None or user.is_bot or not self.serves(chat):
            raise ApplicationHandlerStop

    async def _on_text(self, update: Update, context: Context) -> None:
        message, user = update.message, update.effective_user
        assert message is not None and message.text is not None and user is not None
        key = conversation_key(message.chat, user)
        inbound = Inbound(CHANNEL, key, text=message.text, locale=user.language_code)
        await self._answer(inbound, message.chat, context.bot)

    async def _on_command(self, update: Update, context: Context) -> None:
        message, user = update.message, update.effective_user
        assert message is not None and message.text is not None and user is not None
        # "/start@LotseBot g_thunderbird" -> "start"
        command = message.text.split()[0][1:].partition("@")[0].lower()
        # `args` are set by CommandHandler; an unknown command comes through a MessageHandler.
        args = context.args if context.args is not None else message.text.split()[1:]
        if command == "start":
            argument = deep_link_argument(args)
            if args and argument is None:
                log.info("ignoring a malformed /start payload")
        else:
            argument = " ".join(args) or None
        inbound = Inbound(
            CHANNEL,
            conversation_key(message.chat, user),
            command=command,
            argument=argument,
            locale=user.language_code,
        )
        await self._answer(inbound, message.chat, context.bot)

    async def _on_tap(self, update: Update, context: Context) -> None:
        query = update.callback_query
        assert query is not None
        user, message = query.from_user, query.message
        assert message is not None  # the gate let only callbacks from a chat through
        data = query.data or ""
        owner = button_owner(data)
        if owner is not None and owner != user.id:
            # Another member's question in a group: hers to answer; her keyboard stays.
            tr = translator(pick_locale(user.language_code, self.service.default_locale))
            text = tr.gettext(
                "Diese Schaltflächen gehören zum Gespräch einer anderen Person. Schreiben Sie "
                "mir gern selbst, dann antworte ich Ihnen."
            )
            await with_retries(partial(query.answer, text))
            return
        key = conversation_key(message.chat, user)
        offered, version = await self.service.options_for(CHANNEL, key)
        option = option_for(data, offered, version, _owner(key))
        if option is None:
            # A button of an earlier question, or one pressed twice: say so, and take it away.
            tr = await self.service.translator_for(CHANNEL, key, user.language_code)
            text = tr.gettext(
                "Diese Schaltfläche ist nicht mehr aktuell. "
                "Bitte antworten Sie auf meine letzte Frage."
            )
            await with_retries(partial(query.answer, text))
            await self._remove_keyboard(query)
            return
        await with_retries(query.answer)  # stops the spinner on the button at once
        await self._remove_keyboard(query)  # the same question cannot be answered twice
        inbound = Inbound(CHANNEL, key, option=option.payload, locale=user.language_code)
        await self._answer(inbound, message.chat, context.bot)

    async def _on_other(self, update: Update, context: Context) -> None:
        """Photos, stickers, voice messages: the bot reads text only, and says so."""
        message, user = update.message, update.effective_user
        assert message is not None and user is not None
        key = conversation_key(message.chat, user)
        tr = await self.service.translator_for(CHANNEL, key, user.language_code)
        text = tr.gettext(
            "Bilder, Dateien und Sprachnachrichten kann ich leider nicht ansehen. "
            "Bitte beschreiben Sie mir in Worten, wo Sie gerade stehen."
        )
        await self.send(context.bot, message.chat, key, [Reply(text)])

    async def _on_error(self, update: object, context: Context) -> None:
        """A failed update is logged and the user told; the other updates are not affected."""
        log.error("handling a Telegram update failed", exc_info=context.error)
        if not isinstance(update, Update) or isinstance(context.error, Forbidden):
            return
        user, chat = update.effective_user, update.effective_chat
        if user is None or chat is None:
            return
        if update.callback_query is not None:
            with suppress(TelegramError):  # so the button does not spin until it times out
                await update.callback_query.answer()
        # The language Telegram reports, not the stored one: the database may be what failed.
        tr = translator(pick_locale(user.language_code, self.service.default_locale))
        text = tr.gettext(
            "Entschuldigung, da ist etwas schiefgegangen. Bitte versuchen Sie es gleich noch "
            "einmal."
        )
        with suppress(TelegramError):
            await self.send(context.bot, chat, conversation_key(chat, user), [Reply(text)])

    # --- sending -----------------------------------------------------------------------

    async def _answer(self, inbound: Inbound, chat: Chat, bot: Bot) -> None:
        replies = await self.service.handle(inbound)
        await self.send(bot, chat, inbound.user, replies)

    async def send(self, bot: Bot, chat: Chat | int, user: str, replies: list[Reply]) -> None:
        """Send replies in order; stop (and mark the user) when Telegram says they blocked us.

        `user` is the conversation key (`conversation_key`). `chat` may be a chat id for
        messages the user did not just ask for (an agent's answer, later): those are not sent
        to a user marked as blocked.
        """
        if isinstance(chat, int):
            if await self.service.is_blocked(CHANNEL, user):
                log.info("not sending to a user who blocked the bot")
                return
            chat_id, private = chat, chat > 0
        else:
            chat_id, private = chat.id, chat.type == ChatType.PRIVATE
        # Buttons carry the conversation's version, so a tap can tell an old question.
        asks = any(reply.options for reply in replies)
        version = await self.service.saved_version(CHANNEL, user) if asks else 0
        try:
            for reply in replies:
                for message in render_reply(reply, version, owner=_owner(user)):
                    await with_retries(
                        partial(
                            bot.send_message,
                            chat_id,
                            message.html,
                            parse_mode=ParseMode.HTML,
                            reply_markup=message.keyboard,
                        )
                    )
                if reply.attachment is not None:  # a configuration profile
                    await with_retries(
                        partial(
                            bot.send_document,
                            chat_id,
                            document=reply.attachment.content,
                            filename=reply.attachment.filename,
                        )
                    )
        except Forbidden:
            if private:
                log.info("the user blocked the bot; marking them")
                await self.service.mark_blocked(CHANNEL, user)
            else:
                log.warning("the bot may not write in group %s any more", chat_id)

    async def _remove_keyboard(self, query: CallbackQuery) -> None:
        # "message is not modified" (already gone) or "not found" (deleted): nothing to do.
        with suppress(BadRequest):
            await with_retries(lambda: query.edit_message_reply_markup(reply_markup=None))


# --- running it ----------------------------------------------------------------------------


def allowed_groups(setting: str) -> frozenset[int]:
    """`LOTSE_TELEGRAM_ALLOWED_GROUPS`: comma-separated chat ids such as "-1001234567890"."""
    return frozenset(int(part) for part in setting.replace(" ", "").split(",") if part)


def build_application(
    settings: Settings,
    *,
    post_init: AppHook | None = None,
    post_shutdown: AppHook | None = None,
) -> AnyApplication:
    """The python-telegram-bot application, without handlers (see `TelegramChannel.install`)."""
    assert settings.telegram_token is not None
    builder = (
        ApplicationBuilder()
        .token(settings.telegram_token.get_secret_value())
        .rate_limiter(AIORateLimiter(max_retries=RATE_LIMIT_RETRIES))
        .concurrent_updates(PerUserOrder())
    )
    if settings.telegram_base_url:
        builder = builder.base_url(settings.telegram_base_url)
    if post_init is not None:
        builder = builder.post_init(post_init)
    if post_shutdown is not None:
        builder = builder.post_shutdown(post_shutdown)
    return builder.build()


class TelegramRunner:
    """The Telegram channel (`bot.channels.base.Channel`) on the caller's event loop, with the
    conversation service it is given (`lotse serve` shares one service between all channels).

    `start` connects (getMe), installs the handlers, sets the command menu and starts long
    polling or the webhook listener; `stop` stops taking updates, lets the updates under way
    finish for up to `within` seconds, and shuts the application down. `attach` (given by
    whoever composes the process: the agents' group) is connected before updates flow; the
    stopper it returns is called on `stop`.
    """

    name = CHANNEL
    needs_lease = False  # a webhook may go to any instance

    def __init__(
        self,
        settings: Settings,
        service: ConversationService,
        *,
        attach: Callable[[AnyApplication, TelegramChannel], Stopper | None] | None = None,
    ) -> None:
        self.settings = settings
        self.app = build_application(settings)
        self.channel = TelegramChannel(
            service, allowed_groups=allowed_groups(settings.telegram_allowed_groups)
        )
        self.channel.install(self.app)
        self._attach = attach
        self._detach: Stopper | None = None

    @staticmethod
    def configured(settings: Settings) -> bool:
        return settings.telegram_token is not None and bool(
            settings.telegram_token.get_secret_value()
        )

    @staticmethod
    def configuration_problem(settings: Settings) -> str | None:
        if not TelegramRunner.configured(settings):
            return "LOTSE_TELEGRAM_TOKEN fehlt / is not set (the token from @BotFather)."
        try:
            allowed_groups(settings.telegram_allowed_groups)
        except ValueError:
            return "LOTSE_TELEGRAM_ALLOWED_GROUPS: comma-separated chat ids, e.g. -1001234567890."
        if settings.telegram_webhook_url:
            secret = settings.telegram_webhook_secret
            if secret is None or not WEBHOOK_SECRET.fullmatch(secret.get_secret_value()):
                return (
                    "LOTSE_TELEGRAM_WEBHOOK_SECRET is required with LOTSE_TELEGRAM_WEBHOOK_URL: "
                    "1-256 characters of A-Z, a-z, 0-9, _ and - (Telegram sends it with every "
                    "update)."
                )
        return None

    @property
    def mode(self) -> str:
        return "webhook" if self.settings.telegram_webhook_url else "polling"

    @property
    def detail(self) -> str | None:
        return self.mode

    @property
    def running(self) -> bool:
        updater = self.app.updater
        return self.app.running and updater is not None and updater.running

    async def start(self, on_failure: OnFailure | None = None) -> None:
        # python-telegram-bot retries polling itself; a failure shows when starting.
        settings, app = self.settings, self.app
        await app.initialize()
        await self.channel.register_commands(app.bot)
        if self._attach is not None:
            self._detach = self._attach(app, self.channel)
        await app.start()
        assert app.updater is not None
        if settings.telegram_webhook_url:
            assert settings.telegram_webhook_secret is not None
            await app.updater.start_webhook(
                listen=settings.telegram_webhook_listen,
                port=settings.telegram_webhook_port,
                url_path=urlsplit(settings.telegram_webhook_url).path.lstrip("/"),
                webhook_url=settings.telegram_webhook_url,
                secret_token=settings.telegram_webhook_secret.get_secret_value(),
                allowed_updates=ALLOWED_UPDATES,
            )
        else:
            await app.updater.start_polling(timeout=POLL_TIMEOUT, allowed_updates=ALLOWED_UPDATES)

    async def stop(self, within: float) -> None:
        app = self.app
        try:
            if app.updater is not None and app.updater.running:
                await app.updater.stop()  # no new updates from here on
            if app.running:  # handles what was received, waits for handlers under way
                await asyncio.wait_for(app.stop(), within)
        except TimeoutError:
            log.warning("Telegram updates still under way after %.0f s; stopping anyway", within)
        finally:
            if self._detach is not None:  # what waits for the agents' group: at the next start
                await self._detach(within)
            with suppress(Exception):  # shutting down after a failed start may fail again
                await app.shutdown()

    async def send(self, user: str, replies: list[Reply]) -> None:
        # The user's private chat, or the group a group conversation is in.
        await self.channel.send(self.app.bot, chat_of(user), user, replies)
