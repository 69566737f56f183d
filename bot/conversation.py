"""The conversation service: one inbound message in, the bot's replies out.

load state (store) -> understand (NLU) -> decide (engine) -> dispatch actions -> save state and
transcript. Channels call `handle` and render the replies; they know nothing else.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot import metrics
from bot.commands import COMMAND_INTENTS, COMMANDS
from bot.engine.decision import Action, Decision, DeleteUserData, HandOver, Reply, RunCheck
from bot.engine.engine import LANGUAGE_PAYLOAD, Engine
from bot.engine.options import match_option, understanding_from_payload
from bot.engine.state import ConversationState, Option, Stage
from bot.gate import CleanedText, clean
from bot.i18n import Translator, pick_locale, translator
from bot.knowledge import render
from bot.knowledge.base import KnowledgeBase
from bot.knowledge.registry import KnowledgeRegistry
from bot.locks import KeyedLocks
from bot.storage.store import ConcurrentUpdate, MessageNotStored, Store, StoreBusy, TurnStart
from bot.tasks import cancel_and_wait
from bot.turns import (
    ActionContext,
    ActionHandler,
    Inbound,
    Turn,
    TurnMiddleware,
    TurnRecord,
    warn_of_secret,
)
from bot.understanding import language
from bot.understanding.types import Understander, Understanding

__all__ = ["STRANDED_ANSWER_WITHIN", "STRANDED_NOTICE_WITHIN", "ConversationService"]

log = logging.getLogger(__name__)

# A message its turn left unanswered (see `answer_stranded`): answered in full while this
# fresh, with a short apology and the current question while this old, then not at all.
STRANDED_ANSWER_WITHIN = timedelta(minutes=5)
STRANDED_NOTICE_WITHIN = timedelta(days=1)
# A /start payload Lotse made itself: "g_<guide>", or a signed hand-back token "h_…".
_OWN_PAYLOAD = re.compile(r"(?:g_|h_)[A-Za-z0-9_-]{1,62}")


class ConversationService:
    def __init__(
        self,
        store: Store,
        knowledge: KnowledgeBase | KnowledgeRegistry,
        understander: Understander,
        *,
        default_locale: str = "de",
        handlers: Mapping[type[Action], ActionHandler] | None = None,
        middlewares: Sequence[TurnMiddleware] = (),
    ) -> None:
        self.store = store
        self.registry = (
            knowledge
            if isinstance(knowledge, KnowledgeRegistry)
            else KnowledgeRegistry.fixed(knowledge)
        )
        self.understander = understander
        self._watcher: asyncio.Task[None] | None = None
        self.default_locale = default_locale
        # Who carries out the engine's actions (check, profiles, hand-over); an action
        # without one gets the helpdesk contact.
        self._handlers: dict[type[Action], ActionHandler] = dict(handlers or {})
        # Run around every turn, in this order (tickets, relays, hand-back links).
        self._middlewares = tuple(middlewares)
        # One turn at a time per user; different users run concurrently.
        self._locks: KeyedLocks[tuple[str, str]] = KeyedLocks()

    @property
    def knowledge(self) -> KnowledgeBase:
        """The knowledge in service now (a conversation mid-guide may still use an older one)."""
        return self.registry.current

    def _engine_for(self, state: ConversationState) -> Engine:
        # Mid-guide, a conversation keeps the revision it started the guide with, so an edit
        # that renumbers steps cannot confuse it; everything else uses the current knowledge.
        if state.stage in (Stage.PROTOCOL, Stage.GUIDE):
            return Engine(self.registry.get(state.revision))
        return Engine(self.registry.current)

    def watch_knowledge(self, interval: float = 2.0) -> None:
        """Reload the knowledge base in the background when admins edit it."""
        if self._watcher is None:
            self._watcher = asyncio.create_task(self.registry.watch(interval))

    async def close(self) -> None:
        await cancel_and_wait(self._watcher)
        self._watcher = None
        await self.store.close()

    # --- what channels ask between turns (they never read the store themselves) ---------

    async def options_for(self, channel: str, user: str) -> tuple[Sequence[Option], int]:
        """The options of the user's last question and the conversation's version (buttons
        carry it, so a tap can tell an old question); none and 0 before the first turn."""
        saved = await self.store.conversation(channel, user)
        if saved is None:
            return (), 0
        state = ConversationState.from_json(saved.state) if saved.state else None
        return (state.options if state else ()), saved.version

    async def translator_for(self, channel: str, user: str, hint: str | None) -> Translator:
        """The user's language: the one they speak with Lotse, else the platform's `hint`."""
        saved = await self.store.conversation(channel, user)
        if saved is not None and saved.state:
            return translator(ConversationState.from_json(saved.state).locale)
        return translator(pick_locale(hint, self.default_locale))

    async def saved_version(self, channel: str, user: str) -> int:
        return await self.store.saved_version(channel, user)

    async def mark_blocked(self, channel: str, user: str) -> None:
        """The user blocked the bot: nothing unasked is sent until they write again."""
        await self.store.mark_blocked(channel, user)

    async def is_blocked(self, channel: str, user: str) -> bool:
        return await self.store.is_blocked(channel, user)

    def register(self, action: type[Action], handler: ActionHandler) -> None:
        """Let a service (connection check, tickets) carry out an action the engine asks for
        (tests put a fake check in; `build_app` gives the handlers to the constructor)."""
        self._handlers[action] = handler

    def _lock(self, channel: str, user: str) -> asyncio.Lock:
        return self._locks[(channel, user)]

    async def handle(self, inbound: Inbound) -> list[Reply]:
        lock = self._lock(inbound.channel, inbound.user)
        # The store's turn: one instance at a time per user (PostgreSQL), counted for shutdown.
        async with lock, self.store.turn(inbound.channel, inbound.user):
            started = time.perf_counter()
            try:
                replies = await self._turn(inbound)
            except MessageNotStored:  # the database stayed locked: say so, and nothing else
                log.error("a user's message could not be stored (database locked)")
                tr = translator(pick_locale(inbound.locale, self.default_locale))
                replies = [Reply(_not_stored_text(tr))]
            except StoreBusy:  # stored, but the answer could not be saved
                log.error("a turn could not be saved (database locked)")
                tr = translator(pick_locale(inbound.locale, self.default_locale))
                replies = [Reply(_failure_text(tr))]
        metrics.TURN_SECONDS.observe(time.perf_counter() - started)
        metrics.TURNS.labels(inbound.channel).inc()
        return replies

    async def _turn(self, inbound: Inbound) -> list[Reply]:
        inbound, cleaned = _admit(inbound)
        start = await self.store.begin_turn(
            inbound.channel,
            inbound.user,
            pick_locale(inbound.locale, self.default_locale),
            self._transcript_text(inbound, cleaned.text if cleaned else None),
        )

        async def respond(current: TurnStart) -> list[Reply]:
            return await self._respond(inbound, cleaned, current)

        return await self._until_saved(start, respond, self.store.reload)

    async def _until_saved(
        self,
        start: TurnStart,
        respond: Callable[[TurnStart], Awaitable[list[Reply]]],
        reload: Callable[[TurnStart], Awaitable[TurnStart | None]],
    ) -> list[Reply]:
        """`respond` decides and saves; when another instance saved this conversation first
        (ConcurrentUpdate), decide again on the state it saved. No replies when the
        conversation is gone meanwhile (the user had their data deleted)."""
        current: TurnStart | None = start
        for _attempt in range(3):
            if current is None:
                return []
            try:
                return await respond(current)
            except ConcurrentUpdate:
                log.info("conversation changed by another instance; deciding again")
                current = await reload(current)
        raise RuntimeError("conversation kept changing; giving up")

    async def _respond(
        self, inbound: Inbound, cleaned: CleanedText | None, start: TurnStart
    ) -> list[Reply]:
        state_before = (
            ConversationState.from_json(start.state)
            if start.state
            else ConversationState(locale=start.locale)
        )
        tr = translator(state_before.locale)
        turn = Turn(
            inbound, cleaned, state_before, state_before, tr, start.updated_at, self._engine_for
        )
        try:
            decision = await self._decide(turn)
            if inbound.command is not None and cleaned is not None:  # a command's argument
                warn_of_secret(decision, cleaned, tr)
            # In the language the turn settled on (detected or switched to).
            tr = translator(decision.state.locale)
            replies, deleted = await self._dispatch(decision, inbound, tr)
        except Exception:
            log.exception("turn failed")
            metrics.ERRORS.labels("turn").inc()
            replies = [Reply(_failure_text(tr))]  # true: `begin_turn` stored the message
            decision, deleted = Decision(state_before), False
        if not deleted:
            reply_texts = [self._reply_text(reply) for reply in replies]
            saved = decision.state
            for middleware in self._middlewares:
                saved = middleware.before_save(turn, saved)
            await self.store.finish_turn(start, saved.to_json(), saved.revision, reply_texts)
            if self._middlewares:
                message = self._transcript_text(inbound, cleaned.text if cleaned else None)
                record = TurnRecord(message, decision.state, saved, reply_texts)
                for middleware in self._middlewares:
                    await middleware.after_turn(turn, record)
        return replies

    async def _decide(self, turn: Turn) -> Decision:
        for middleware in self._middlewares:
            decided = await middleware.before_turn(turn)
            if decided is not None:
                return decided
        inbound, cleaned, state, tr = turn.inbound, turn.cleaned, turn.state, turn.translator
        engine = self._engine_for(state)
        if inbound.command is not None and inbound.command not in COMMANDS:
            return engine.unknown_command(state, tr, COMMANDS)
        if inbound.command == "bot":
            decision = engine.prompt(state, tr)
            decision.outputs.insert(0, Reply(tr.gettext("Sie schreiben bereits mit mir, Lotse.")))
            return decision
        if inbound.command == "start":
            guide = _guide_from_payload(inbound.argument)
            last_seen = tr.date(turn.updated_at) if turn.updated_at else None
            return engine.welcome(state, tr, guide=guide, last_seen=last_seen)
        if inbound.command == "hilfe":
            return engine.help(state, tr)
        if inbound.command == "sprache":
            if inbound.argument:
                return await self._switch_language(inbound, state, inbound.argument)
            return engine.choose_language(state, tr)
        if inbound.option and inbound.option.startswith(LANGUAGE_PAYLOAD):
            return await self._switch_language(
                inbound, state, inbound.option.removeprefix(LANGUAGE_PAYLOAD)
            )
        if inbound.command in COMMAND_INTENTS:
            message = understanding_from_payload(
                COMMAND_INTENTS[inbound.command], f"/{inbound.command}"
            )
            assert message is not None
            return engine.decide(state, message, tr)
        if inbound.option is not None:
            message = understanding_from_payload(inbound.option)
            if message is None:  # an old or forged button: just ask again
                return engine.prompt(state, tr)
            return engine.decide(state, message, tr)
        assert cleaned is not None  # a text message
        if cleaned.too_long:
            return warn_of_secret(engine.reject(state, "too_long", tr), cleaned, tr)
        if cleaned.had_secret:
            return engine.reject(state, "secret", tr)
        if cleaned.unreadable:
            return engine.reject(state, "unreadable", tr)
        asked_for = language.requested(cleaned.text)
        if asked_for is not None:
            return await self._switch_language(inbound, state, asked_for)
        option = match_option(state.options, cleaned.text)
        if option and option.payload.startswith(LANGUAGE_PAYLOAD):
            return await self._switch_language(
                inbound, state, option.payload.removeprefix(LANGUAGE_PAYLOAD)
            )
        message = understanding_from_payload(option.payload, cleaned.text) if option else None
        if message is None:
            message = await self.understand(cleaned.text)
        if not state.locale_settled:
            # A pasted error message shows the program's language more than the user's.
            quoted = bool(message.entities.keys() & {"error", "trouble"})
            state = await self._detect_language(inbound, state, cleaned.text, settle=not quoted)
            tr = translator(state.locale)
        return engine.decide(state, message, tr)

    async def resume(self, channel: str, user: str, guide: str | None, intro: str) -> list[Reply]:
        """Lotse speaks first (an agent handed the user back): the intro, then the start of
        `guide` or the current question. Saved like a turn, without a message from the user."""

        async def respond(start: TurnStart) -> list[Reply]:
            return await self._speak_first(start, intro, guide)

        async def reload(_start: TurnStart) -> TurnStart | None:
            return await self.store.load_turn(channel, user)

        async with self._lock(channel, user), self.store.turn(channel, user):
            start = await self.store.load_turn(channel, user)
            if start is None:  # the user had their data deleted meanwhile
                return []
            return await self._until_saved(start, respond, reload)

    async def _speak_first(
        self, start: TurnStart, intro: str, guide: str | None, *, ask: bool = True
    ) -> list[Reply]:
        """The intro, then the start of `guide` or (with `ask`) the current question; saved
        on `start`."""
        state = (
            ConversationState.from_json(start.state)
            if start.state
            else ConversationState(locale=start.locale)
        )
        tr = translator(state.locale)
        # A new guide starts on the current knowledge; the current question stays on the
        # revision the conversation is pinned to.
        engine = Engine(self.registry.current) if guide else self._engine_for(state)
        if ask:
            decision = engine.resume(state, tr, guide=guide, intro=intro)
        else:
            decision = Decision(state, [Reply(intro)])
        inbound = Inbound(start.channel, start.external_id)
        replies, _deleted = await self._dispatch(decision, inbound, tr)
        await self.store.finish_turn(
            start,
            decision.state.to_json(),
            decision.state.revision,
            [self._reply_text(reply) for reply in replies],
        )
        return replies

    async def answer_stranded(
        self, channel: str, user: str, now: datetime, *, min_age: timedelta = timedelta(0)
    ) -> list[Reply]:
        """Answer the user's last message that no saved turn followed (its instance was
        stopped or killed mid-turn, see bot/serve/stranded.py); the replies to send, [] when
        there is nothing (left) to answer. A message up to `STRANDED_ANSWER_WITHIN` old is
        answered as if it had just come; one up to `STRANDED_NOTICE_WITHIN` old gets a short
        apology naming its time and the current question (an answer to a question asked an
        hour ago would make no sense without it); an older one nothing, since the user has
        long moved on; one younger than `min_age` is left alone (its turn may still be under
        way). Saved like a turn under the user's locks, so of several instances only the
        first answers (the others find it answered, or lose the version check)."""
        async with self._lock(channel, user), self.store.turn(channel, user):
            stranded = await self.store.stranded(channel, user)
            if stranded is None or now - stranded.created_at < min_age:
                return []
            age = now - stranded.created_at
            try:
                if age <= STRANDED_ANSWER_WITHIN:
                    inbound, cleaned = _admit(
                        _inbound_from_transcript(channel, user, stranded.text)
                    )
                    return await self._respond(inbound, cleaned, stranded.start)
                if age <= STRANDED_NOTICE_WITHIN:
                    notice = self._stranded_notice(stranded.start, stranded.created_at, now)
                    # While an agent has the user's ticket, Lotse asks nothing.
                    ask = not await self._keeps_lotse_quiet(stranded.start)
                    return await self._speak_first(stranded.start, notice, None, ask=ask)
            except ConcurrentUpdate:  # another instance answered it meanwhile
                log.info("a stranded message was answered by another instance")
            return []

    async def _keeps_lotse_quiet(self, start: TurnStart) -> bool:
        if not start.state:
            return False
        state = ConversationState.from_json(start.state)
        for middleware in self._middlewares:
            if await middleware.keeps_lotse_quiet(state):
                return True
        return False

    def _stranded_notice(self, start: TurnStart, written: datetime, now: datetime) -> str:
        saved = ConversationState.from_json(start.state) if start.state else None
        tr = translator(saved.locale if saved else start.locale)
        zone = ZoneInfo(self.knowledge.helpdesk.timezone)
        local, today = written.astimezone(zone), now.astimezone(zone)
        clock = f"{local:%H:%M}"
        if local.date() == today.date():
            text = tr.gettext(
                "Entschuldigung, Ihre Nachricht von {time} Uhr ist bei einem Neustart liegen "
                "geblieben."
            )
        else:
            text = tr.gettext(
                "Entschuldigung, Ihre Nachricht von gestern, {time} Uhr, ist bei einem Neustart "
                "liegen geblieben."
            )
        return (
            text.format(time=clock)
            + " "
            + tr.gettext("Falls sie noch aktuell ist, schreiben Sie sie bitte noch einmal.")
        )

    async def _switch_language(
        self, inbound: Inbound, state: ConversationState, locale: str
    ) -> Decision:
        decision = self._engine_for(state).switch_language(state, locale)
        await self.store.set_locale(inbound.channel, inbound.user, decision.state.locale)
        return decision

    async def _detect_language(
        self, inbound: Inbound, state: ConversationState, text: str, *, settle: bool
    ) -> ConversationState:
        """The first messages' language wins over the channel's language code (a German user
        on an English phone writes German); clear evidence settles it for the conversation."""
        evidence = language.evidence(text)
        if evidence is None:
            return state
        detected, strong = evidence[0], evidence[1] and settle
        if detected != state.locale:
            await self.store.set_locale(inbound.channel, inbound.user, detected)
        return dataclasses.replace(state, locale=detected, locale_settled=strong)

    async def understand(self, text: str) -> Understanding:
        understanding = await self.understander.understand(text)
        metrics.UNDERSTANDINGS.labels(understanding.source).inc()
        return understanding

    async def _dispatch(
        self, decision: Decision, inbound: Inbound, tr: Translator
    ) -> tuple[list[Reply], bool]:
        """Carry out the engine's actions in order; each handler's state change is applied to
        `decision.state` before the next action.

        Returns the replies and whether the user's data was deleted (then nothing is saved).
        """
        replies: list[Reply] = []
        deleted = False
        for item in decision.outputs:
            if isinstance(item, Reply):
                replies.append(item)
            elif isinstance(item, DeleteUserData):
                for middleware in self._middlewares:
                    await middleware.forget_user(inbound.channel, inbound.user)
                await self.store.delete_user(inbound.channel, inbound.user)
                deleted = True
            elif type(item) in self._handlers:
                context = ActionContext(inbound, decision.state, tr)
                handled = await self._handlers[type(item)](item, context)
                replies.extend(handled.replies)
                decision.state = handled.change.applied_to(decision.state)
            else:
                replies.extend(self._without_service(item, tr))
        return replies, deleted

    def _without_service(self, action: Action, tr: Translator) -> list[Reply]:
        """No check or ticket service is running: point the user to the helpdesk."""
        _ = tr.gettext
        if isinstance(action, RunCheck):
            intro = _(
                "Den Verbindungstest kann ich gerade nicht ausführen. Wenn Sie vermuten, dass "
                "der Server gestört ist, wenden Sie sich bitte an den Helpdesk."
            )
        else:
            assert isinstance(action, HandOver)
            intro = _("Gern hilft Ihnen ein Mensch weiter.")
        return [Reply(intro + "\n\n" + render.helpdesk_text(self.knowledge, tr))]

    @staticmethod
    def _transcript_text(inbound: Inbound, cleaned_text: str | None) -> str:
        if inbound.command in COMMANDS:  # its argument went through the gate (`_admit`)
            return f"/{inbound.command}" + (f" {inbound.argument}" if inbound.argument else "")
        if cleaned_text is not None:
            return cleaned_text
        return f"[{inbound.option}]"

    @staticmethod
    def _reply_text(reply: Reply) -> str:
        text = reply.text
        if reply.attachment is not None:
            text += f"\n[Datei: {reply.attachment.filename}]"
        if reply.options:
            text += "\n[" + " | ".join(option.label for option in reply.options) + "]"
        return text


def _failure_text(tr: Translator) -> str:
    return tr.gettext(
        "Entschuldigung, da ist bei mir etwas schiefgegangen. Ihre Nachricht ist gespeichert; "
        "bitte versuchen Sie es gleich noch einmal."
    )


def _not_stored_text(tr: Translator) -> str:
    return tr.gettext(
        "Entschuldigung, Ihre Nachricht konnte ich gerade nicht speichern; bitte schicken Sie "
        "sie gleich noch einmal."
    )


def _inbound_from_transcript(channel: str, user: str, text: str) -> Inbound:
    """The message a stored transcript line came from (see `_transcript_text`)."""
    if text.startswith("[") and text.endswith("]"):
        return Inbound(channel, user, option=text[1:-1])
    if text.startswith("/"):
        command, _space, argument = text[1:].partition(" ")
        if command in COMMANDS or command.isalpha():  # an unknown one is answered as such
            return Inbound(channel, user, command=command, argument=argument or None)
    return Inbound(channel, user, text=text)


def _admit(inbound: Inbound) -> tuple[Inbound, CleanedText | None]:
    """The gate: what the user wrote, cleaned and redacted before anything stores, understands,
    relays or mails it. Returns the inbound with its argument cleaned, and the gate's verdict
    on the user's words: the text, a command's argument, or the whole line of an unknown
    command (kept as typed, so "/mensh mein Passwort ist …" is redacted too)."""
    if inbound.text is not None:
        return inbound, clean(inbound.text)
    if inbound.command is None:  # a tap on an option Lotse offered
        return inbound, None
    if inbound.command not in COMMANDS:
        line = f"/{inbound.command}" + (f" {inbound.argument}" if inbound.argument else "")
        return dataclasses.replace(inbound, argument=None), clean(line)
    argument = inbound.argument
    if argument is None or (inbound.command == "start" and _OWN_PAYLOAD.fullmatch(argument)):
        return inbound, None
    cleaned = clean(argument)
    return dataclasses.replace(inbound, argument=cleaned.text), cleaned


def _guide_from_payload(payload: str | None) -> str | None:
    """Deep links open a guide: "g_thunderbird" -> "thunderbird"."""
    if payload and payload.startswith("g_"):
        return payload[2:].replace("_", "-")
    return None
