"""The agents' desk: ticket events become cards and messages in the agents' chats, and what
agents type or tap there becomes calls of the ticket service. Channel-neutral: the platform
glue (`telegram.py`, `matrix.py`) posts and edits messages for it (`AgentChat`).

- Events go to every configured chat (a Telegram group and a Matrix room may both be set)
  through the channel outbox (`bot/tickets/channel_outbox.py`): stored first, so a restart
  loses nothing and posts them at start; one ticket's events in the order they came, tickets
  taking turns and a new ticket's card first, so one user's flood never holds up another's
  card; one chat failing does not stop the other. A user's messages within
  `records.MERGE_WINDOW` are shown as one relay.
- A card is posted when a ticket is made and edited when its status changes; a short line
  under it says who did what, and the user's messages while an agent has the ticket appear as
  replies to it. Which message is whose card is kept in the database (`card_refs`), so another
  instance, or this one after a restart, edits and replies to the same card.
- An agent's reply answers a ticket only when it replies to that ticket's card or to a message
  posted about it (a relay, a status line), recorded in the database when it was posted. A
  reply to the bot's other messages (the list of tickets, the help, an error answer, a notice)
  gets a hint instead: it names tickets but is no ticket's message.
- An agent's answer to the user is shown in the other agents' chats ("#12 Antwort von Bert über
  Telegram: …"), so agents on Telegram and on Matrix both see the whole conversation.
- What an agent does that cannot be done (unknown number, closed ticket, unknown guide, missing
  text, a user this instance cannot reach) gets the ticket service's polite sentence, or the
  desk's own, in the chat, in the agents' language (`TicketError.text`). A change that is
  saved but whose message to the user failed is shown as that warning ("… ist gespeichert …
  Bitte nicht wiederholen"), so nobody repeats it.
- Knowledge base reloads and rejections (issue 8) are posted to every chat as well.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from bot.agents import card_refs, cards
from bot.agents.card_refs import ChatPlace
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
from bot.clock import utcnow
from bot.engine.decision import Reply
from bot.i18n import Translator
from bot.knowledge.base import KnowledgeBase
from bot.knowledge.registry import KnowledgeRegistry, ReloadOutcome
from bot.tickets import channel_outbox, records
from bot.tickets.channel_outbox import Deliverer, Stopper, start_deliverer
from bot.tickets.models import Ticket, TicketError, TicketEvent, UserNotReached
from bot.tickets.service import TicketService

__all__ = ["STATUS_EVENTS", "AgentChat", "Attempt", "Desk", "RepliedTo", "TapOutcome", "place"]

log = logging.getLogger(__name__)
STATUS_EVENTS = ("taken", "handed_back", "closed", "reported")
# The agents' chat an agent is acting in, while the desk carries out what they wrote there:
# the ticket service's "agent_message" event arrives within that call and learns its source.
_acting_in: ContextVar[str | None] = ContextVar("acting_in", default=None)


class AgentChat(Protocol):
    """A place where agents read and answer: the platform glue implements it."""

    @property
    def name(self) -> str:
        """The platform: "telegram" or "matrix" (one agents' chat each)."""

    @property
    def address(self) -> str:
        """The chat's id on its platform: the group's id, the room's id."""

    async def post(self, notice: Notice, reply_to: str | None = None) -> str | None:
        """Send; the sent message's id (for edits and replies), None if it could not be sent."""

    async def edit(self, ref: str, notice: Notice) -> None: ...

    async def delete(self, ref: str) -> bool:
        """Remove a message of the bot; False when the platform refuses (too old, gone)."""


@dataclass(frozen=True)
class RepliedTo:
    """The bot's message an agent replied to, and the ticket it belongs to: None for the
    bot's messages about no single ticket (the list, the help, an error answer, a notice)."""

    ticket: int | None


@dataclass(frozen=True)
class TapOutcome:
    text: str  # for the agent who tapped (Telegram shows it over the chat)
    done: bool  # the change is saved
    alert: bool = False  # a refusal or a warning: stays on screen until dismissed


@dataclass(frozen=True)
class Attempt:
    """How a ticket service call for an agent went."""

    done: bool  # the change is saved
    problem: str | None = None  # why not, or (done) the warning that the user was not reached


def place(chat: AgentChat) -> ChatPlace:
    return ChatPlace(chat.name, chat.address)


class Desk:
    def __init__(
        self,
        tickets: TicketService | None,
        registry: KnowledgeRegistry,
        tr: Translator,
        *,
        clock: Callable[[], datetime] = utcnow,
        relay_window: timedelta = records.MERGE_WINDOW,
    ) -> None:
        self.tickets = tickets
        self.registry = registry
        self.tr = tr
        self.clock = clock
        self.relay_window = relay_window
        self._chats: dict[str, AgentChat] = {}
        self._deliverers: dict[str, tuple[Deliverer, Stopper]] = {}
        self._pending: set[asyncio.Task[None]] = set()
        self._loop = asyncio.get_running_loop()  # reloads are reported from a worker thread
        if tickets is not None:
            tickets.on_event(self.on_event)
        registry.on_reload(self._on_reload)

    def add_chat(self, chat: AgentChat) -> None:
        self._chats[chat.name] = chat
        self.deliver(chat.name)

    def deliver(self, name: str) -> Stopper:
        """Deliver what is queued for channel `name` (its agents' chat, pushes to its users)
        from now on, starting with what waited; the function that stops it. One deliverer
        per channel and process."""
        running = self._deliverers.get(name)
        if running is not None:
            return running[1]
        tickets = self.tickets

        async def send(user: str, replies: list[Reply]) -> None:
            sender = tickets.sender_for(name) if tickets is not None else None
            if sender is None:
                raise LookupError(f"no {name} sender here")
            await sender(user, replies)

        async def show(event: TicketEvent, source: str | None) -> None:
            await self.show_queued(name, event, source)

        store = tickets.store if tickets is not None else None
        if store is None:

            async def nothing(_within: float) -> None:
                return None

            return nothing
        deliverer = Deliverer(store, name, send, show, clock=self.clock)
        stop_running = start_deliverer(deliverer)

        async def stop(within: float) -> None:
            if self._deliverers.get(name, (None,))[0] is deliverer:
                del self._deliverers[name]
            await stop_running(within)

        self._deliverers[name] = (deliverer, stop)
        return stop

    def wake(self) -> None:
        """Look for due deliveries now (held relays whose time came), not at the next poll."""
        for deliverer, _stop in self._deliverers.values():
            deliverer.wake()

    async def stop_delivery(self, name: str, within: float) -> None:
        running = self._deliverers.get(name)
        if running is not None:
            await running[1](within)

    @property
    def chat_names(self) -> frozenset[str]:
        """The agents' chats this process shows tickets in ("telegram", "matrix")."""
        return frozenset(self._chats)

    def remove_chat(self, name: str) -> None:
        """The channel stopped here (e.g. another instance took the Matrix lease)."""
        self._chats.pop(name, None)

    async def drain(self) -> None:
        """Show every event that is due (tests; held relays wait for their time)."""
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        for deliverer, _stop in list(self._deliverers.values()):
            await deliverer.deliver_all()

    # --- what agents see -----------------------------------------------------------------

    async def on_event(self, event: TicketEvent) -> None:
        """The ticket service's listener: the event is stored for each agents' chat (here and
        on other instances), and this instance's deliverers are woken."""
        if self.tickets is None:
            return
        source = _acting_in.get() if event.kind == "agent_message" else None
        due_now = await self.tickets.store.run(
            channel_outbox.queue_event,
            event,
            source,
            frozenset(self._chats),  # also while delivery is stopped: kept for the next start
            self.clock(),
            self.relay_window,
        )
        for name in due_now:
            running = self._deliverers.get(name)
            if running is not None:
                running[0].wake()

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def show_queued(self, name: str, event: TicketEvent, source: str | None) -> None:
        """An event from the channel outbox, shown in the agents' chat `name` only; raises to
        be retried (also when that chat stopped here: another instance may take it)."""
        chat = self._chats.get(name)
        if chat is None:
            if name in channel_outbox.LEASED_CHANNELS and name in self._deliverers:
                return  # Matrix runs here without an agents' room: nothing to show
            raise LookupError(f"no agents' chat {name} here")
        await self._show_in(chat, event, source)

    async def _show_in(self, chat: AgentChat, event: TicketEvent, source: str | None) -> None:
        ticket = event.ticket
        if event.kind == "created":
            await self._post_card(chat, ticket)
        elif event.kind in STATUS_EVENTS:
            ref = await self._card_of(chat, ticket.number)
            if ref is None:  # no card in this chat yet (posting it failed, chat added since)
                ref = await self._post_card(chat, ticket, closed_by=event.agent)
            else:
                await chat.edit(ref, self.card(ticket, closed_by=event.agent))
            if event.kind == "reported":
                return  # the card counts the users; no line per report
            line = cards.status_change(event.kind, ticket, event.agent, self.tr)
            if line is not None:
                await self._post(chat, ticket.number, line, reply_to=ref)
        elif event.kind == "user_message" and event.text is not None:
            ref = await self._card_of(chat, ticket.number)
            notice = cards.user_message(ticket.number, event.text, self.tr)
            await self._post(chat, ticket.number, notice, reply_to=ref)
        elif event.kind == "forgotten":
            await self._remove_messages(chat, ticket.number)
        elif event.kind == "agent_message" and event.text is not None:
            if source == chat.name:
                return  # the agents here saw it being written
            ref = await self._card_of(chat, ticket.number)
            agent = event.agent or "?"  # the service always names who answered
            notice = cards.agent_answer(ticket.number, agent, source, event.text, self.tr)
            await self._post(chat, ticket.number, notice, reply_to=ref)

    async def _remove_messages(self, chat: AgentChat, number: int) -> None:
        """The user had their data deleted: the messages posted about the ticket (their relayed
        words, answers shown from the other chat, status lines) go, as its transcript went from
        the database; the card stays, closed, and a line says why."""
        if self.tickets is None:
            return
        refs = await self.tickets.store.run(card_refs.messages_of, number, place(chat))
        kept = [ref for ref in refs if not await chat.delete(ref)]
        if kept:  # Telegram lets bots delete only for 48 hours
            log.warning("%d messages about ticket %d stay in %s", len(kept), number, chat.name)
        await self.tickets.store.run(card_refs.forget_messages, number, place(chat), refs)
        line = self.tr.gettext(
            "#{number}: Der Nutzer hat seine Daten löschen lassen; seine Nachrichten hier sind "
            "entfernt, soweit der Chat das erlaubt."
        ).format(number=number)
        await self._post(chat, number, Notice(line), reply_to=await self._card_of(chat, number))

    async def _post_card(
        self, chat: AgentChat, ticket: Ticket, closed_by: str | None = None
    ) -> str | None:
        ref = await chat.post(self.card(ticket, closed_by))
        if ref is not None and self.tickets is not None:
            await self.tickets.store.run(card_refs.save_card, ticket.number, place(chat), ref)
        return ref

    async def _card_of(self, chat: AgentChat, number: int) -> str | None:
        """The ticket's card in this chat, whichever instance posted it."""
        if self.tickets is None:
            return None
        return await self.tickets.store.run(card_refs.card_of, number, place(chat))

    async def _post(
        self, chat: AgentChat, number: int, notice: Notice, reply_to: str | None = None
    ) -> str | None:
        """Post a message about ticket `number` and record it, so replies to it answer it."""
        ref = await chat.post(notice, reply_to)
        if ref is not None and self.tickets is not None:
            await self.tickets.store.run(card_refs.save_message, number, place(chat), ref)
        return ref

    def card(self, ticket: Ticket, closed_by: str | None = None) -> Notice:
        return cards.card(ticket, self.clock(), self.tr, self._guide_title, closed_by)

    def _guide_title(self, guide_id: str) -> str | None:
        guide = self.registry.current.guides.get(guide_id)
        return guide.label if guide is not None else None

    async def ticket_of(self, chat: AgentChat, ref: str) -> int | None:
        """The ticket a message of the bot in `chat` belongs to (its card, a relay, a status
        line), whichever instance posted it; None for its other messages."""
        if self.tickets is None:
            return None
        return await self.tickets.store.run(card_refs.ticket_of_message, place(chat), ref)

    def ticket_named_at_start(self, text: str | None) -> int | None:
        """For a card or relay posted before its id was recorded: the "#N" it starts with."""
        return cards.ticket_named_at_start(text, self.tr)

    async def broadcast(self, notice: Notice) -> None:
        """A notice for every agents' chat (the knowledge base's reload messages)."""
        for chat in list(self._chats.values()):
            try:
                await chat.post(notice)
            except Exception:
                log.exception("posting a notice in %s failed", chat.name)

    def _on_reload(self, outcome: ReloadOutcome, _current: KnowledgeBase) -> None:
        notice = Notice(outcome.message(self.tr))
        try:
            in_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:  # the registry's watcher reloads in a worker thread
            in_loop = False
        if in_loop:
            self._spawn(self.broadcast(notice))
        else:
            self._loop.call_soon_threadsafe(self._spawn, self.broadcast(notice))

    # --- what agents do ------------------------------------------------------------------

    async def on_message(
        self, chat: str, agent: str, text: str, replied: RepliedTo | None
    ) -> Notice | None:
        """An agent's message in the agents' chat `chat` (its name); the answer to post there.

        `replied`: the bot's message the agent replied to, None when it is no reply to the bot.
        Text that is neither a command nor such a reply is the agents talking among themselves
        and left alone.
        """
        acting = _acting_in.set(chat)
        try:
            return await self._on_message(agent, text, replied)
        finally:
            _acting_in.reset(acting)

    async def _on_message(self, agent: str, text: str, replied: RepliedTo | None) -> Notice | None:
        _ = self.tr.gettext
        command = parse_command(text)
        replied_to = replied.ticket if replied is not None else None
        if command is not None:
            return await self._command(agent, command, replied_to)
        if replied is None or not text.strip():
            return None
        if replied_to is None:  # the list names tickets, but answering it answers none of them
            return Notice(
                _(
                    "Bitte antworten Sie auf die Karte eines Tickets oder schreiben Sie "
                    "/antwort N Text."
                )
            )
        if self.tickets is None:
            return Notice(_("Tickets sind bei diesem Bot nicht eingerichtet."))
        return await self._carry_out(lambda tickets: tickets.answer(replied_to, agent, text))

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
            return cards.ticket_list(await self.tickets.listing(), self.clock(), self.tr)
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
            return TapOutcome(_("Diese Schaltfläche ist nicht mehr gültig."), False, alert=True)
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
        attempt = await self._attempt(call)
        if attempt.problem is not None:
            return TapOutcome(attempt.problem, attempt.done, alert=True)
        return TapOutcome(done.format(number=number), done=True)

    async def _carry_out(self, call: Callable[[TicketService], Awaitable[Ticket]]) -> Notice | None:
        """Run a ticket service call; None when it worked (its event tells the chat), else the
        refusal, or the warning that the change is saved but the user was not reached."""
        attempt = await self._attempt(call)
        return Notice(attempt.problem) if attempt.problem is not None else None

    async def _attempt(self, call: Callable[[TicketService], Awaitable[Ticket]]) -> Attempt:
        assert self.tickets is not None
        try:
            await call(self.tickets)
        except UserNotReached as warning:  # saved and shown on the card: not to be repeated
            return Attempt(done=True, problem=warning.text(self.tr))
        except TicketError as error:
            return Attempt(done=False, problem=error.text(self.tr))
        except Exception:
            log.exception("an agent's request failed")
            return Attempt(
                done=False,
                problem=self.tr.gettext(
                    "Das hat leider nicht geklappt. Bitte versuchen Sie es gleich noch einmal."
                ),
            )
        return Attempt(done=True)
