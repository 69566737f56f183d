"""The tickets' turn middleware (room: service, beside the conversation service): how tickets,
relays and hand-back links hook into every turn (`bot.turns.TurnMiddleware`).

- `TicketTurns`: while an agent has the user's ticket, what the user writes goes to the agent
  and Lotse stays silent (one note the first time); `/bot` ends that. A turn Lotse answered
  while a ticket is active is part of the ticket's transcript. Deleting the user's data
  forgets them in their tickets too.
- `LinkTurns`: `/start h_…` follows a hand-back link into its guide (or refuses politely); the
  outcomes the agent who sent the link wants to know are marked in the saved state and mailed
  after the turn, each once.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import get_args

from bot import metrics
from bot.engine.decision import Decision, Reply
from bot.engine.engine import LANGUAGE_PAYLOAD
from bot.engine.options import match_option
from bot.engine.state import ConversationState, Stage
from bot.gate import CleanedText
from bot.tickets.links import PREFIX, HandoffLinks, LinkRefused, Refusal, refusal_text
from bot.tickets.links import reached as link_outcomes_reached
from bot.tickets.models import LinkOutcome, OutcomeKind, Ticket
from bot.tickets.service import TicketService
from bot.turns import Turn, TurnMiddleware, TurnRecord, warn_of_secret

__all__ = ["LinkTurns", "TicketTurns"]

log = logging.getLogger(__name__)


class TicketTurns(TurnMiddleware):
    def __init__(self, tickets: TicketService) -> None:
        self.tickets = tickets

    async def before_turn(self, turn: Turn) -> Decision | None:
        """While an agent has the user's ticket, what the user writes goes to the agent and
        Lotse stays silent (one note the first time); `/bot` ends that. None: Lotse answers
        as usual, as for commands and taps (see `_for_agent`)."""
        state, inbound = turn.state, turn.inbound
        if state.ticket is None and inbound.command != "bot":
            return None  # no database round trip for a user without a ticket
        ticket = await self.tickets.active(state.ticket) if state.ticket is not None else None
        if ticket is None:
            turn.state = dataclasses.replace(state, ticket=None)  # closed meanwhile
        if ticket is None or ticket.status != "open":
            return None
        if inbound.command not in (None, "bot") or inbound.option is not None:
            return None  # addressed to Lotse (see `_for_agent`)
        if inbound.command == "bot":
            return await self._back_to_lotse(turn, ticket)
        if turn.cleaned is None or not _for_agent(turn.cleaned, state):
            return None
        return await self._relay(turn, turn.cleaned, ticket)

    async def _back_to_lotse(self, turn: Turn, ticket: Ticket) -> Decision:
        tr = turn.translator
        await self.tickets.user_returned(ticket)
        decision = turn.engine_for(turn.state).prompt(turn.state, tr)
        text = tr.gettext(
            "Gern, ab jetzt antworte wieder ich, Lotse. Ihre Anfrage Nr. {number} bleibt "
            "beim Helpdesk offen."
        ).format(number=ticket.number)
        decision.outputs.insert(0, Reply(text))
        return decision

    async def _relay(self, turn: Turn, cleaned: CleanedText, ticket: Ticket) -> Decision:
        state, tr = turn.state, turn.translator
        engine = turn.engine_for(state)
        if cleaned.too_long or cleaned.unreadable:
            rejected = engine.reject(state, "too_long" if cleaned.too_long else "unreadable", tr)
            return warn_of_secret(rejected, cleaned, tr)
        await self.tickets.relay_from_user(ticket, cleaned.text)
        turn.message_recorded = True
        # Silent (the agent answers); a password was relayed redacted, and gets a warning.
        decision = engine.reject(state, "secret", tr) if cleaned.had_secret else Decision(state)
        if state.relay_noted != ticket.number:  # once per ticket: where the message went
            decision.state = dataclasses.replace(decision.state, relay_noted=ticket.number)
            decision.outputs.append(
                Reply(
                    tr.gettext(
                        "Ihre Nachricht ist beim Helpdesk angekommen. Die Antwort bekommen Sie "
                        "hier im Chat."
                    )
                )
            )
        return decision

    async def after_turn(self, turn: Turn, record: TurnRecord) -> None:
        """A turn Lotse answered while a ticket is active is part of its transcript."""
        ticket = record.after.ticket
        if ticket is None or not record.replies:
            return
        # A relayed message is in the ticket already, and so is the message of the turn
        # that opened it (copied with the conversation); their replies are not.
        already_recorded = turn.message_recorded or ticket != turn.before.ticket
        try:
            await self.tickets.record_turn(
                ticket, None if already_recorded else record.message, record.replies
            )
        except Exception:  # the user has their answer; the records are second
            log.exception("recording the turn for a ticket failed")
            metrics.ERRORS.labels("ticket_record").inc()

    async def keeps_lotse_quiet(self, state: ConversationState) -> bool:
        if state.ticket is None:
            return False
        ticket = await self.tickets.active(state.ticket)
        return ticket is not None and ticket.status == "open"

    async def forget_user(self, channel: str, user: str) -> None:
        await self.tickets.forget_user(channel, user)


def _for_agent(cleaned: CleanedText, state: ConversationState) -> bool:
    """Free text is for the agent. Commands (/loeschen, /hilfe, /sprache, /start with or without
    a link, /neu, /pruefen, /mensch) and taps on Lotse's buttons never get here: a user who
    types /hilfe or taps "Ja, alles löschen" expects Lotse's answer, and must be able to delete
    their data while the ticket is open. So is a typed answer to the question such a command
    just asked (a typed "Ja" to "alles löschen?", a language)."""
    if state.stage is Stage.CONFIRM_DELETE:  # "Ja" or "nein" answer Lotse's question
        return False
    option = match_option(state.options, cleaned.text)
    return option is None or not option.payload.startswith(LANGUAGE_PAYLOAD)


class LinkTurns(TurnMiddleware):
    """Hand-back links; without `links` (no LOTSE_HANDOFF_SECRET) every link is refused."""

    def __init__(self, links: HandoffLinks | None) -> None:
        self.links = links

    async def before_turn(self, turn: Turn) -> Decision | None:
        """A hand-back link: the guide it names, or a polite refusal and the normal start."""
        inbound, tr = turn.inbound, turn.translator
        token = inbound.argument
        if inbound.command != "start" or not token or not token.startswith(PREFIX):
            return None
        reason: Refusal = "forged"
        if self.links is not None:
            try:
                link_id, guide = await self.links.redeem(token, inbound.channel, inbound.user)
            except LinkRefused as refused:
                log.info("hand-back link refused (%s)", refused.reason)
                reason = refused.reason
            else:
                state = dataclasses.replace(turn.state.fresh(), handoff_link=link_id)
                return turn.engine_for(state).welcome(state, tr, guide=guide)
        last_seen = tr.date(turn.updated_at) if turn.updated_at else None
        decision = turn.engine_for(turn.state).welcome(turn.state, tr, last_seen=last_seen)
        decision.outputs.insert(0, Reply(refusal_text(reason, tr)))
        return decision

    def before_save(self, turn: Turn, state: ConversationState) -> ConversationState:
        """Marked as reported in the state saved now, so each outcome is mailed once."""
        if self.links is None or state.handoff_link is None:
            return state
        reached = link_outcomes_reached(turn.before, state)
        if not reached:
            return state
        return dataclasses.replace(state, link_reported=[*state.link_reported, *reached])

    async def after_turn(self, turn: Turn, record: TurnRecord) -> None:
        """A hand-back link's user reached an outcome the agent wants to know."""
        after = record.after
        if self.links is None or after.handoff_link is None:
            return
        try:
            for kind in get_args(OutcomeKind):  # marked by `before_save` in this turn
                if kind not in after.link_reported or kind in record.decided.link_reported:
                    continue
                outcome = LinkOutcome(kind, after.guide, after.ticket, after.last_check)
                await self.links.report(after.handoff_link, outcome)
        except Exception:  # the user has their answer; the records are second
            log.exception("reporting a hand-back link's outcome failed")
            metrics.ERRORS.labels("ticket_record").inc()
