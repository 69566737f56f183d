"""The agents' chat on Telegram: a group (`LOTSE_TELEGRAM_AGENT_CHAT`, e.g. -1001234567890)
where ticket cards appear with buttons, and pushing agents' answers to Telegram users.

- Every update from the agents' group is taken here, before the user flow sees it: agents are
  the people in that group, and nobody anywhere else can act as one.
- Cards are HTML messages with an inline keyboard (take / hand back / close), edited in place
  (`editMessageText`) when the ticket changes, by whichever instance handles the change (the
  card's message id is in the database); relayed user messages reply to the card.
- An agent answers by replying to a card or relayed message of the bot (the database knows
  which ticket each belongs to), or with `/antwort N text`. With privacy mode on (BotFather's
  default) the bot still sees exactly that in a group: commands and replies to its own messages.
- Whoever is in the group acts as an agent, so the group is the allowlist: keep it closed (no
  invite links, only helpdesk staff as members).
"""

from __future__ import annotations

import logging
from contextlib import suppress
from functools import partial

from telegram import (
    Bot,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    ReplyParameters,
    Update,
    User,
)
from telegram.constants import CallbackQueryLimit, ParseMode
from telegram.error import BadRequest, Forbidden
from telegram.ext import ApplicationHandlerStop, TypeHandler

from bot.agents.cards import Notice
from bot.agents.commands import PAYLOAD_PREFIX
from bot.agents.desk import Desk, RepliedTo
from bot.channels.telegram import (
    CHANNEL,
    AnyApplication,
    Context,
    TelegramChannel,
    chat_of,
    with_retries,
)
from bot.channels.telegram_format import escape, split_text
from bot.config import Settings
from bot.engine.decision import Reply

__all__ = [
    "AGENTS_GROUP",
    "BlockedByUser",
    "TelegramAgentChat",
    "agent_name",
    "connect_agents",
    "keyboard",
]

log = logging.getLogger(__name__)
AGENTS_GROUP = -2  # handler group: before the user flow's gate (-1) and handlers (0)


class BlockedByUser(Exception):
    """Telegram delivers nothing to this user: they blocked the bot."""


def agent_name(user: User) -> str:
    """How an agent appears on cards and in the ticket: name, and the @username if there is one."""
    if user.username:
        return f"{user.full_name} (@{user.username})"
    return f"{user.full_name} ({user.id})"


def keyboard(notice: Notice) -> InlineKeyboardMarkup | None:
    if not notice.actions:
        return None
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(action.label, callback_data=action.payload)]
         for action in notice.actions]
    )  # fmt: skip


class TelegramAgentChat:
    """The agents' group: posts and edits for the desk, agents' messages and taps to it."""

    name = CHANNEL

    def __init__(self, bot: Bot, chat_id: int, desk: Desk) -> None:
        self.bot = bot
        self.chat_id = chat_id
        self.desk = desk

    @property
    def address(self) -> str:
        return str(self.chat_id)

    def install(self, app: AnyApplication) -> None:
        app.add_handler(TypeHandler(Update, self._route), group=AGENTS_GROUP)

    # --- the desk's side -------------------------------------------------------------------

    async def post(self, notice: Notice, reply_to: str | None = None) -> str | None:
        pieces = split_text(notice.text)
        reply = (
            ReplyParameters(int(reply_to), allow_sending_without_reply=True)
            if reply_to is not None
            else None
        )
        sent: Message | None = None
        try:
            for index, piece in enumerate(pieces):
                last = index == len(pieces) - 1
                sent = await with_retries(
                    partial(
                        self.bot.send_message,
                        self.chat_id,
                        escape(piece),
                        parse_mode=ParseMode.HTML,
                        reply_markup=keyboard(notice) if last else None,
                        reply_parameters=reply if index == 0 else None,
                    )
                )
        except Forbidden:
            log.warning("the bot may not write in the agents' group %s", self.chat_id)
            return None
        return str(sent.message_id) if sent is not None else None

    async def edit(self, ref: str, notice: Notice) -> None:
        # "message is not modified": the card already says this (a second instance edited it).
        with suppress(BadRequest):
            await with_retries(
                partial(
                    self.bot.edit_message_text,
                    escape(notice.text),
                    chat_id=self.chat_id,
                    message_id=int(ref),
                    parse_mode=ParseMode.HTML,
                    reply_markup=keyboard(notice),
                )
            )

    async def delete(self, ref: str) -> bool:
        try:
            return bool(
                await with_retries(partial(self.bot.delete_message, self.chat_id, int(ref)))
            )
        except (BadRequest, Forbidden) as error:  # older than 48 hours, or already gone
            log.info("could not delete message %s in the agents' group: %s", ref, error)
            return False

    # --- the agents' side ------------------------------------------------------------------

    async def _route(self, update: Update, _context: Context) -> None:
        chat = update.effective_chat
        if chat is None or chat.id != self.chat_id:
            return  # not the agents' group: the user flow decides
        try:
            if update.callback_query is not None:
                await self._on_tap(update.callback_query)
            elif update.message is not None:
                await self._on_message(update.message)
        except Exception:  # logged here: the user flow's error handler would answer a user
            log.exception("handling an update in the agents' group failed")
        raise ApplicationHandlerStop

    async def _on_message(self, message: Message) -> None:
        agent = message.from_user
        if agent is None or agent.is_bot:
            return
        replied = await self._replied_to(message)
        if message.text is None:
            if replied is not None and replied.ticket is not None:
                await self.post(
                    Notice(
                        self.desk.tr.gettext(
                            "Nur Text kann ich an den Nutzer weitergeben, keine Bilder oder "
                            "Dateien."
                        )
                    ),
                    str(message.message_id),
                )
            return
        answer = await self.desk.on_message(self.name, agent_name(agent), message.text, replied)
        if answer is not None:
            await self.post(answer, str(message.message_id))

    async def _replied_to(self, message: Message) -> RepliedTo | None:
        """The bot's message this one replies to and its ticket; None for no reply to the bot."""
        replied = message.reply_to_message
        if replied is None or replied.from_user is None or replied.from_user.id != self.bot.id:
            return None
        known = await self.desk.ticket_of(self, str(replied.message_id))
        if known is None:
            known = self.desk.ticket_named_at_start(replied.text)
        return RepliedTo(known)

    async def _on_tap(self, query: CallbackQuery) -> None:
        if not (query.data or "").startswith(PAYLOAD_PREFIX + ":"):
            await with_retries(query.answer)  # a user-flow button in the wrong chat
            return
        outcome = await self.desk.on_tap(agent_name(query.from_user), query.data or "")
        text = outcome.text[: CallbackQueryLimit.ANSWER_CALLBACK_QUERY_TEXT_LENGTH]
        # A refusal or a warning stays on screen until dismissed; a success is a short toast.
        await with_retries(partial(query.answer, text, show_alert=outcome.alert))


def connect_agents(
    app: AnyApplication, channel: TelegramChannel, settings: Settings, desk: Desk
) -> None:
    """Let tickets reach Telegram users, and run the agents' group if one is configured."""
    service = channel.service
    tickets = desk.tickets
    if tickets is not None:

        async def push(user: str, replies: list[Reply]) -> None:
            # The user's private chat, or the group of a group conversation.
            await channel.send(app.bot, chat_of(user), user, replies)
            # The channel drops messages to a user who blocked the bot; the agent must know.
            if await service.store.is_blocked(CHANNEL, user):
                raise BlockedByUser("the Telegram user blocked the bot")

        tickets.register_user_sender(CHANNEL, push)
    if settings.telegram_agent_chat is not None:
        agents = TelegramAgentChat(app.bot, settings.telegram_agent_chat, desk)
        agents.install(app)
        desk.add_chat(agents)
