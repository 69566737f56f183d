"""The agents' desk: ticket events become cards and messages in the agents' chats, and what
agents type or tap there becomes calls of the ticket service. Channel-neutral: the platform
glue (`telegram.py`, `matrix.py`) posts and edits messages for it (`AgentChat`).

- Events are shown one after another in the order they came, on every configured chat (a
  Telegram group and a Matrix room may both be set); one chat failing does not stop the other.
- A card is posted when a ticket is made and edited when its status changes; a short line
  under it says who did what, and the user's messages while an agent has the ticket appear as
  replies to it. Which message is whose card is remembered in memory: after a restart a status
  change posts a fresh card, and replies still work because every message names its "#N".
- What an agent does that cannot be done (unknown number, closed ticket, unknown guide, missing
  text) gets the ticket service's polite German sentence, or the desk's own, in the chat.
- Knowledge base reloads and rejections (issue 8) are posted to every chat as well.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol
from weakref import WeakKeyDictionary

from bot.agents import cards
from bot.agents.cards import Notice
from bot.agents.commands import (
    ANSWER,
    CLOSE,
    GUIDE,
    HELP,
    LIST,
    TAKE,
    TAP_BACK,
    TAP_CLOSE,
    TAP_TAKE,
    DeskCommand,
    parse_command,
    parse_tap,
)
from bot.conversation import ConversationService
from bot.i18n import Translator, translator
from bot.knowledge.base import KnowledgeBase
from bot.knowledge.registry import KnowledgeRegistry, ReloadOutcome
from bot.tickets.models import Ticket, TicketError, TicketEvent
from bot.tickets.service import TicketService

log = logging.getLogger(__name__)
STATUS_EVENTS = ("taken", "handed_back", "closed")


class AgentChat(Protocol):
    """A place where agents read and answer: the platform glue implements it."""

    @property
    def name(self) -> str: ...

    async def post(self, notice: Notice, reply_to: str | None = None) -> str | None:
        """Send; the sent message's id (for edits and replies), None if it could not be sent."""

    async def edit(self, ref: str, notice: Notice) -> None: ...


@dataclass(frozen=True)
class TapOutcome:
    text: str  # for the agent who tapped (Telegram shows it over the chat)
    done: bool


def utcnow() -> datetime:
    return datetime.now(UTC)


_desks: WeakKeyDictionary[ConversationService, Desk] = WeakKeyDictionary()


class Desk:
    def __init__(
        self,
        tickets: TicketService | None,
        registry: KnowledgeRegistry,
        tr: Translator,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.tickets = tickets
        self.registry = registry
        self.tr = tr
        self.clock = clock
        self._chats: dict[str, AgentChat] = {}
        self._cards: dict[tuple[str, int], str] = {}  # (chat, ticket number) -> card message
        self._about: dict[tuple[str, str], int] = {}  # (chat, message) -> ticket number
        self._order = asyncio.Lock()  # first come, first served: events keep their order
        self._pending: set[asyncio.Task[None]] = set()
        self._loop = asyncio.get_running_loop()  # reloads are reported from a worker thread
        if tickets is not None:
            tickets.on_event(self.on_event)
        registry.on_reload(self._on_reload)

    @classmethod
    def for_service(cls, service: ConversationService, locale: str | None = None) -> Desk:
        """The one desk of a conversation service, shared by its Telegram and Matrix glue."""
        desk = _desks.get(service)
        if desk is None:
            tr = translator(locale or service.default_locale)
            desk = _desks[service] = cls(service.tickets, service.registry, tr)
        return desk

    def add_chat(self, chat: AgentChat) -> None:
        self._chats[chat.name] = chat

    async def drain(self) -> None:
        """Wait until every event so far is shown (shutdown, tests)."""
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    # --- what agents see -----------------------------------------------------------------

    async def on_event(self, event: TicketEvent) -> None:
        """The ticket service's listener: returns at once, the chats are written to after."""
        self._spawn(self._show(event))

    def _spawn(self, work: Awaitable[None]) -> None:
        async def in_order() -> None:
            async with self._order:
                await work

        task = asyncio.ensure_future(in_order())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _show(self, event: TicketEvent) -> None:
        for chat in list(self._chats.values()):
            try:
                await self._show_in(chat, event)
            except Exception:  # one chat failing must not keep the event from the others
                log.exception("showing a ticket event (%s) in %s failed", event.kind, chat.name)

    async def _show_in(self, chat: AgentChat, event: TicketEvent) -> None:
        ticket = event.ticket
        if event.kind == "created":
            await self._post_card(chat, ticket)
        elif event.kind in STATUS_EVENTS:
            ref = self._cards.get((chat.name, ticket.number))
            if ref is None:  # not posted by this process (restarted since)
                ref = await self._post_card(chat, ticket, closed_by=event.agent)
            else:
                await chat.edit(ref, self.card(ticket, closed_by=event.agent))
            line = cards.status_change(event.kind, ticket, event.agent, self.tr)
            if line is not None:
                await self._post(chat, ticket.number, line, reply_to=ref)
        elif event.kind == "user_message" and event.text is not None:
            ref = self._cards.get((chat.name, ticket.number))
            notice = cards.user_message(ticket.number, event.text, self.tr)
            await self._post(chat, ticket.number, notice, reply_to=ref)
        # "agent_message": the agent wrote it in this chat; repeating it would be noise.

    async def _post_card(
        self, chat: AgentChat, ticket: Ticket, closed_by: str | None = None
    ) -> str | None:
        ref = await self._post(chat, ticket.number, self.card(ticket, closed_by))
        if ref is not None:
            self._cards[(chat.name, ticket.number)] = ref
        return ref

    async def _post(
        self, chat: AgentChat, number: int, notice: Notice, reply_to: str | None = None
    ) -> str | None:
        ref = await chat.post(notice, reply_to)
        if ref is not None:
            self._about[(chat.name, ref)] = number
        return ref

    def card(self, ticket: Ticket, closed_by: str | None = None) -> Notice:
        return cards.card(ticket, self.clock(), self.tr, self._guide_title, closed_by)

    def _guide_title(self, guide_id: str) -> str | None:
        guide = self.registry.current.guides.get(guide_id)
        return guide.label if guide is not None else None

    def ticket_of(self, chat: str, ref: str) -> int | None:
        """The ticket a message this desk posted is about (for replies to it)."""
        return self._about.get((chat, ref))

    async def broadcast(self, notice: Notice) -> None:
        """A notice for every agents' chat (the knowledge base's reload messages)."""
        for chat in list(self._chats.values()):
            try:
                await chat.post(notice)
            except Exception:
                log.exception("posting a notice in %s failed", chat.name)

    def _on_reload(self, outcome: ReloadOutcome, _current: KnowledgeBase) -> None:
        notice = Notice(outcome.message())
        try:
            in_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:  # the registry's watcher reloads in a worker thread
            in_loop = False
        if in_loop:
            self._spawn(self.broadcast(notice))
        else:
            self._loop.call_soon_threadsafe(self._spawn, self.broadcast(notice))

    # --- what agents do ------------------------------------------------------------------

    async def on_message(self, agent: str, text: str, replied_to: int | None) -> Notice | None:
        """An agent's message in the agents' chat; the answer to post there, if any.

        `replied_to`: the ticket of the bot's message the agent replied to. Text that is neither
        a command nor a reply is the agents talking among themselves and left alone.
        """
        command = parse_command(text)
        if command is None:
            if replied_to is None or not text.strip():
                return None
            if self.tickets is None:
                return Notice(self.tr.gettext("Tickets sind bei diesem Bot nicht eingerichtet."))
            return await self._carry_out(lambda tickets: tickets.answer(replied_to, agent, text))
        return await self._command(agent, command, replied_to)

    async def _command(
        self, agent: str, command: DeskCommand, replied_to: int | None
    ) -> Notice | None:
        _ = self.tr.gettext
        if command.name == HELP:
            return cards.help_text(self.tr)
        if not command.known:
            return Notice(
                _("Den Befehl /{command} kenne ich nicht. /hilfe zeigt, was ich kann.").format(
                    command=command.name
                )
            )
        if self.tickets is None:
            return Notice(_("Tickets sind bei diesem Bot nicht eingerichtet."))
        if command.name == LIST:
            return cards.ticket_list(await self.tickets.list(), self.clock(), self.tr)
        number = command.number if command.number is not None else replied_to
        if number is None:
            return Notice(
                _("Bitte nennen Sie die Ticketnummer, zum Beispiel: /{command} 12").format(
                    command=command.name
                )
            )
        if command.name == ANSWER:
            if not command.rest:
                return Notice(
                    _(
                        "Bitte schreiben Sie den Text für den Nutzer hinter die Nummer, zum "
                        "Beispiel: /antwort {number} Guten Tag, …"
                    ).format(number=number)
                )
            rest = command.rest
            return await self._carry_out(lambda tickets: tickets.answer(number, agent, rest))
        if command.name == GUIDE:
            guide = command.rest.split()[0] if command.rest else None
            return await self._carry_out(lambda tickets: tickets.hand_back(number, agent, guide))
        if command.name == CLOSE:
            return await self._carry_out(lambda tickets: tickets.close(number, agent))
        assert command.name == TAKE
        return await self._carry_out(lambda tickets: tickets.take(number, agent))

    async def on_tap(self, agent: str, payload: str) -> TapOutcome:
        """A button on a card; the short text to show the agent who tapped it."""
        _ = self.tr.gettext
        tap = parse_tap(payload)
        if tap is None or self.tickets is None:
            return TapOutcome(_("Diese Schaltfläche ist nicht mehr gültig."), done=False)
        number = tap.number
        actions = {
            TAP_TAKE: (
                lambda tickets: tickets.take(number, agent),
                _("Sie haben Ticket #{number} übernommen."),
            ),
            TAP_BACK: (
                lambda tickets: tickets.hand_back(number, agent, None),
                _("Ticket #{number} ist zurück bei Lotse."),
            ),
            TAP_CLOSE: (
                lambda tickets: tickets.close(number, agent),
                _("Ticket #{number} ist geschlossen."),
            ),
        }
        call, done = actions[tap.action]
        problem = await self._carry_out(call)
        if problem is not None:
            return TapOutcome(problem.text, done=False)
        return TapOutcome(done.format(number=number), done=True)

    async def _carry_out(self, call: Callable[[TicketService], Awaitable[Ticket]]) -> Notice | None:
        """Run a ticket service call; None when it worked (its event tells the chat)."""
        assert self.tickets is not None
        try:
            await call(self.tickets)
        except TicketError as error:
            return Notice(str(error))
        except Exception:
            log.exception("an agent's request failed")
            return Notice(
                self.tr.gettext(
                    "Das hat leider nicht geklappt. Bitte versuchen Sie es gleich noch einmal."
                )
            )
        return None
