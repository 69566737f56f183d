"""The ticket service: hand-over from Lotse to helpdesk agents and back.

- The engine's `HandOver` action (`handle_hand_over`, an action handler) opens a ticket (one
  active ticket per user; asking again refers to it). The reply gives the number and when the
  helpdesk answers.
- Agents (agents' chat, `lotse tickets`) take, answer, hand back and close tickets; the user
  gets an agent's answer and a hand-back's first guide step pushed through the sender their
  channel registered.
- While an agent has the ticket ("open") Lotse stays silent for that user and relays what
  they write as "user_message" events; `/bot` returns the user to Lotse (the turn middleware
  in `middleware.py`).
- A connection check that finds the mail server broken opens an incident ticket
  (`after_checks` wraps the check's action handler).
- Every change queues its ticket mail in the same transaction (see `records`); listeners get
  a `TicketEvent` after the transaction committed, always, also when the message to the user
  failed. That failure reaches the agent as `UserNotReached` (a TicketError saying the change
  is saved), so nobody repeats a change that was made.
- A user of a channel another instance runs (Matrix, under its lease) is reached through the
  channel outbox (`channel_outbox.py`): the push is queued and that instance delivers it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import partial

from bot import metrics
from bot.clock import utcnow
from bot.engine.decision import Action, HandOver, Reply
from bot.gate import clean
from bot.i18n import N_, Text, Translator, translator
from bot.knowledge import render
from bot.knowledge.base import KnowledgeBase
from bot.storage.store import Store, StoredMessage
from bot.tickets import channel_outbox, records
from bot.tickets.hours import answer_time
from bot.tickets.links import HandoffLinks, link_reference
from bot.tickets.models import (
    EventKind,
    Status,
    Ticket,
    TicketError,
    TicketEvent,
    UserNotReached,
    no_such_ticket,
    unknown_guide,
)
from bot.tickets.records import MailSettings, NewTicket
from bot.turns import ActionContext, ActionHandler, Handled, StateChange

__all__ = ["UNREACHABLE", "Listener", "Resume", "TicketService", "UserSender"]

log = logging.getLogger(__name__)

Listener = Callable[[TicketEvent], Awaitable[None]]
UserSender = Callable[[str, list[Reply]], Awaitable[None]]
# Lotse takes a user back from the agent: (channel, user, guide or None, intro) -> the replies
# (`ConversationService.resume`).
Resume = Callable[[str, str, str | None, str], Awaitable[list[Reply]]]
# Why an agent's message cannot reach the user: a refusal, or a warning after a saved change.
UNREACHABLE = N_("Der Nutzer ist über {channel} von hier aus nicht erreichbar.")


class TicketService:
    def __init__(
        self,
        store: Store,
        knowledge: Callable[[], KnowledgeBase],
        *,
        mail: MailSettings | None = None,
        links: HandoffLinks | None = None,
        resume: Resume | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.clock = clock  # tests pin it: the answer-time sentence depends on the hour
        self.knowledge = knowledge
        self.mail = mail
        self.links = links  # with LOTSE_HANDOFF_SECRET
        self._resume = resume  # without it (`lotse tickets`) a hand-back only records
        self._listeners: list[Listener] = []
        self._senders: dict[str, UserSender] = {}

    # --- for agents' channels ----------------------------------------------------------

    def on_event(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def register_user_sender(self, channel: str, send: UserSender) -> None:
        self._senders[channel] = send

    def unregister_user_sender(self, channel: str) -> None:
        """The channel stopped here: pushes to its users go through the channel outbox again."""
        self._senders.pop(channel, None)

    async def get(self, number: int) -> Ticket | None:
        return await self.store.run(records.load, number)

    async def listing(self, status: Status | None = None) -> list[Ticket]:
        return await self.store.run(records.listing, status)

    async def transcript(self, number: int) -> list[StoredMessage]:
        lines = await self.store.run(records.transcript, number)
        return [StoredMessage(direction, text, created) for direction, _a, text, created in lines]

    async def take(self, number: int, agent: str) -> Ticket:
        before = await self._require(number)
        ticket = await self.store.run(records.take, number, agent, self.mail)
        if before.status != "open":
            await self._emit("taken", ticket, agent=agent)
            await self._push(ticket, self._taken_text(ticket))
        return ticket

    async def answer(self, number: int, agent: str, text: str) -> Ticket:
        if not text.strip():
            raise TicketError(N_("Bitte schreiben Sie eine Antwort, die ich weitergeben kann."))
        # An answer exists to reach the user: refused before it is recorded when it cannot.
        before = await self._require(number)
        if before.active:  # a closed one is refused by `records.answer`, saying so
            await self._require_reachable(before)
        cleaned = clean(text)
        ticket, taken_now = await self.store.run(
            records.answer, number, agent, cleaned.text, self.mail
        )
        if taken_now:
            await self._emit("taken", ticket, agent=agent)
        await self._emit("agent_message", ticket, text=cleaned.text, agent=agent)
        tr = translator(ticket.locale)
        relayed = tr.gettext("Antwort vom Helpdesk (Anfrage Nr. {number}):").format(
            number=ticket.number
        )
        # The user gets the agent's words as written; only the records are redacted.
        pushes = [f"{relayed}\n\n{text.strip()}"]
        if taken_now:
            pushes.insert(0, self._taken_text(ticket))
        await self._send(ticket, [Reply(push) for push in pushes])
        return ticket

    async def hand_back(self, number: int, agent: str, guide_id: str | None) -> Ticket:
        knowledge = self.knowledge()
        if guide_id is not None and guide_id not in knowledge.guides:
            raise unknown_guide(guide_id, knowledge.guides)
        ticket = await self.store.run(records.hand_back, number, agent, self.mail)
        await self._emit("handed_back", ticket, agent=agent)
        if self._resume is not None and ticket.user:
            tr = translator(ticket.locale)
            intro = tr.gettext(
                "Der Helpdesk hat Sie wieder an mich, Lotse, übergeben. Ihre Anfrage Nr. "
                "{number} bleibt offen; Sie können jederzeit wieder „Mensch“ schreiben."
            ).format(number=ticket.number)
            replies = await self._resume(ticket.channel, ticket.user, guide_id, intro)
            await self._send(ticket, replies)
        return ticket

    async def close(self, number: int, agent: str) -> Ticket:
        ticket = await self.store.run(records.close, number, agent, self.mail)
        await self._emit("closed", ticket, agent=agent)
        tr = translator(ticket.locale)
        await self._push(
            ticket,
            tr.gettext(
                "Ihre Anfrage Nr. {number} ist abgeschlossen. Wenn Sie noch Fragen haben, "
                "schreiben Sie mir einfach – ich, Lotse, bin wieder für Sie da."
            ).format(number=ticket.number),
        )
        return ticket

    async def close_idle(self, now: datetime, waiting_days: int, new_days: int) -> list[Ticket]:
        """Close tickets nobody moves any more (see `records.close_idle`); the agents' cards
        follow through the "closed" events. The users are not told: they went quiet."""
        closed = await self.store.run(records.close_idle, now, waiting_days, new_days, self.mail)
        for ticket in closed:
            log.info("ticket %d closed after being idle", ticket.number)
            await self._emit("closed", ticket)
        return closed

    # --- for the conversation service --------------------------------------------------

    async def handle_hand_over(self, action: Action, context: ActionContext) -> Handled:
        """The engine asks for a human: open a ticket, or refer to the user's active one, or
        (a server error) to the incident other users' checks opened already."""
        assert isinstance(action, HandOver)
        state, tr = context.state, context.translator
        inbound = context.inbound
        guide = state.guide if state.stage in ("guide", "finished", "protocol") else None
        check = state.last_check
        new = NewTicket(
            reason=action.reason,
            channel=inbound.channel,
            user=inbound.user,
            locale=state.locale,
            program=state.program,
            version=state.version,
            guide=guide,
            step=state.step + 1 if guide else None,
            last_check=check,
            external_ref=await self._link_reference(state.handoff_link),
            incident_key=(
                records.incident_key(check)
                if action.reason == "server_error" and check is not None
                else None
            ),
        )
        _ = tr.gettext
        now = self.clock()
        if new.incident_key is not None:
            ticket, created = await self.store.run(records.open_incident, new, self.mail, now)
            if not created:  # another user's incident: this user is counted there
                await self._emit("reported", ticket)
                return Handled([Reply(self._incident_known_text(ticket, tr))])
        else:
            try:
                ticket, created = await self.store.run(records.create, new, self.mail, now)
            except records.TicketLimitReached:
                log.info("ticket limit reached (%s)", action.reason)
                return Handled([Reply(self._limited_text(tr))])
        if created:
            metrics.TICKETS.labels(action.reason).inc()
            log.info("ticket %d opened (%s)", ticket.number, action.reason)
            await self._emit("created", ticket)
            if action.reason == "server_error":  # opened without the user asking for it
                text = _(
                    "Der Test zeigt einen Fehler am Mailserver; ich habe den Helpdesk "
                    "informiert (Anfrage Nr. {number})."
                ).format(number=ticket.number)
            else:
                text = _(
                    "Ich habe Ihr Anliegen an den Helpdesk weitergegeben – Ihre Anfrage hat die "
                    "Nummer {number}. Sie müssen nichts wiederholen: Der Helpdesk sieht unser "
                    "bisheriges Gespräch."
                ).format(number=ticket.number)
        else:
            text = _(
                "Ihre Anfrage Nr. {number} liegt dem Helpdesk bereits vor; eine zweite ist "
                "nicht nötig. Was Sie mir hier schreiben, kommt zu dieser Anfrage."
            ).format(number=ticket.number)
        when = answer_time(self.knowledge().helpdesk, now, tr)
        if when:
            text += " " + when
        text += " " + _(
            "Die Antwort bekommen Sie hier im Chat. Bis dahin helfe ich Ihnen gern weiter."
        )
        return Handled([Reply(text)], StateChange(ticket=ticket.number))

    def after_checks(self, check: ActionHandler) -> ActionHandler:
        """The check's action handler, followed by what its result means for the helpdesk:
        a server error goes to them (once per outage, see `records.open_incident`); a healthy
        server ends its incidents."""

        async def check_then_report(action: Action, context: ActionContext) -> Handled:
            checked = await check(action, context)
            state = checked.change.applied_to(context.state)
            reported = await self._after_check(dataclasses.replace(context, state=state))
            replies = [*checked.replies, *reported.replies]
            return Handled(replies, checked.change.then(reported.change))

        return check_then_report

    async def _after_check(self, context: ActionContext) -> Handled:
        state = context.state
        check = state.last_check
        if check is None:
            return Handled([])
        if check.get("overall") != "error":
            ended = await self.store.run(records.end_incidents, str(check.get("server") or ""))
            for number in ended:
                log.info("incident %d: the server was found healthy again", number)
            return Handled([])
        if state.ticket is not None:  # the helpdesk has this user's ticket already
            return Handled([])
        return await self.handle_hand_over(HandOver("server_error"), context)

    @staticmethod
    def _incident_known_text(ticket: Ticket, tr: Translator) -> str:
        return tr.gettext(
            "Der Test zeigt einen Fehler am Mailserver. Der Helpdesk weiß bereits davon und "
            "kümmert sich darum (Anfrage Nr. {number}); Sie müssen ihn nicht noch einmal "
            "melden. Bis dahin helfe ich Ihnen gern weiter."
        ).format(number=ticket.number)

    def _limited_text(self, tr: Translator) -> str:
        text = tr.gettext(
            "Sie haben in kurzer Zeit schon mehrere Anfragen an den Helpdesk gestellt; eine "
            "weitere kann ich gerade nicht aufnehmen. Bitte wenden Sie sich direkt an den "
            "Helpdesk."
        )
        return text + "\n\n" + render.helpdesk_text(self.knowledge(), tr)

    async def active(self, number: int) -> Ticket | None:
        """The ticket if it is still active, else None."""
        ticket = await self.get(number)
        return ticket if ticket is not None and ticket.active else None

    async def relay_from_user(self, ticket: Ticket, text: str) -> None:
        """The user wrote while an agent has the ticket: record, mail, tell the agents."""
        ticket = await self.store.run(
            records.user_message, ticket.number, text, self.mail, self.clock()
        )
        await self._emit("user_message", ticket, text=text)

    async def user_returned(self, ticket: Ticket) -> Ticket:
        """The user chose `/bot`: Lotse answers again; the ticket waits for the agent."""
        ticket = await self.store.run(records.hand_back, ticket.number, None, self.mail)
        await self._emit("handed_back", ticket)
        return ticket

    async def record_turn(self, number: int, inbound: str | None, replies: list[str]) -> None:
        """A turn Lotse answered while the ticket is active; `inbound` None when the user's
        message is in the ticket already."""
        await self.store.run(records.add_turn, number, inbound, replies)

    async def forget_user(self, channel: str, user: str) -> None:
        forgotten = await self.store.run(records.forget_user, channel, user, self.mail)
        for ticket in forgotten.closed:  # the cards must not offer to answer a deleted user
            await self._emit("closed", ticket)
        for number in forgotten.numbers:  # their messages in the agents' chats go too
            await self._emit("forgotten", await self._require(number))

    async def _link_reference(self, link_id: str | None) -> str | None:
        if link_id is None:
            return None
        return await self.store.run(link_reference, link_id)

    # --- helpers -----------------------------------------------------------------------

    async def _require(self, number: int) -> Ticket:
        ticket = await self.get(number)
        if ticket is None:
            raise no_such_ticket(number)
        return ticket

    @staticmethod
    def _taken_text(ticket: Ticket) -> str:
        tr: Translator = translator(ticket.locale)
        return tr.gettext(
            "Eine Mitarbeiterin oder ein Mitarbeiter des Helpdesks hat Ihre Anfrage Nr. "
            "{number} übernommen und antwortet Ihnen hier. Mit /bot kommen Sie jederzeit "
            "zurück zu mir, Lotse."
        ).format(number=ticket.number)

    async def _push(self, ticket: Ticket, text: str) -> None:
        await self._send(ticket, [Reply(text)])

    def sender_for(self, channel: str) -> UserSender | None:
        """The sender this instance's `channel` registered (the channel outbox's deliverer)."""
        return self._senders.get(channel)

    async def _require_reachable(self, ticket: Ticket) -> None:
        """Refuse when no instance can send to the ticket's user (a channel nobody runs, or
        `lotse tickets` without channels); one run by another instance gets it queued."""
        if not ticket.user or self._senders.get(ticket.channel) is not None:
            return
        if not await self.store.run(channel_outbox.served_elsewhere, ticket.channel):
            raise TicketError(UNREACHABLE, channel=ticket.channel)

    async def _send(self, ticket: Ticket, replies: list[Reply]) -> None:
        """Send after a committed change: a failure is a warning (UserNotReached), never a
        reason to repeat the change."""
        if not ticket.user or not replies:
            return
        send = self._senders.get(ticket.channel)
        if send is None:
            payload = channel_outbox.replies_payload(ticket.user, replies)
            user = channel_outbox.USER
            queue = partial(channel_outbox.queue, ticket=ticket.number)
            if await self.store.run(queue, ticket.channel, user, payload, self.clock()):
                return  # another instance runs the channel and delivers it (wird zugestellt)
            problem = Text(UNREACHABLE, channel=ticket.channel)
        else:
            try:
                await send(ticket.user, replies)
                return
            except Exception as error:
                log.warning(
                    "ticket %d: message to the user failed: %s",
                    ticket.number,
                    type(error).__name__,
                )
                metrics.ERRORS.labels("ticket_push").inc()
                problem = Text(N_("Die Nachricht hat den Nutzer leider nicht erreicht."))
        raise UserNotReached(ticket, problem)

    async def _emit(
        self, kind: EventKind, ticket: Ticket, *, text: str | None = None, agent: str | None = None
    ) -> None:
        event = TicketEvent(kind, ticket, text, agent)
        for listener in self._listeners:
            try:
                await listener(event)
            except Exception:  # one broken listener must not stop the others or the user
                log.exception("ticket event listener failed (%s)", kind)
                metrics.ERRORS.labels("ticket_event").inc()
