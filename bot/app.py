"""The composition root (room: wiring): settings -> knowledge registry, store, understanding,
tickets with links, and the conversation service with its action handlers (profiles, check
followed by the incident report, hand-over) and turn middlewares (tickets and relays,
hand-back links) -> `App`.

Each part gets what it needs through its constructor. A knowledge reload has one subscriber
here (the understander); the check, profiles and tickets read the current knowledge through a
callable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

from bot.agents.desk import Desk
from bot.check.handler import CheckActionHandler
from bot.clock import utcnow
from bot.config import ConfigurationError, Settings
from bot.conversation import ConversationService
from bot.engine.decision import Action, HandOver, Reply, RunCheck, SendProfile
from bot.i18n import Translator, translator
from bot.knowledge.base import KnowledgeBase
from bot.knowledge.registry import KnowledgeRegistry
from bot.profiles.handler import ProfileHandler
from bot.storage.store import Store
from bot.tickets.links import HandoffLinks, secret_problem
from bot.tickets.middleware import LinkTurns, TicketTurns
from bot.tickets.records import mail_settings
from bot.tickets.service import Resume, TicketService
from bot.turns import ActionHandler, TurnMiddleware
from bot.understanding.lexicon import LexiconUnderstander
from bot.understanding.types import Understander

__all__ = ["App", "build_app", "build_tickets", "build_understander"]

log = logging.getLogger(__name__)


def build_understander(settings: Settings, knowledge: KnowledgeBase) -> Understander:
    if settings.nlu == "rasa":
        # Rasa gives the intent, the lexicon the rest, and all of it when Rasa is down.
        from bot.understanding.rasa import RasaUnderstander

        if not settings.rasa_url.startswith(("http://", "https://")):
            raise ConfigurationError(
                f"LOTSE_RASA_URL={settings.rasa_url!r}: expected http://host:port of a Rasa "
                "server (scripts/nlu serve starts one on http://127.0.0.1:5005)."
            )
        return RasaUnderstander(knowledge, settings.rasa_url, settings.rasa_timeout)
    return LexiconUnderstander(knowledge)


@dataclass
class App:
    """Everything one process serves with, built once from the settings (`build_app`):
    `lotse serve`, the CLI commands and the tests all start here."""

    settings: Settings
    registry: KnowledgeRegistry
    store: Store
    understander: Understander
    service: ConversationService
    tickets: TicketService
    check: CheckActionHandler | None
    clock: Callable[[], datetime] = utcnow  # what the tickets and the desk read

    @cached_property
    def desk(self) -> Desk:
        """Where the agents' chats of every channel meet. Made when the first channel connects
        its agents' chat: from then on ticket events are queued for the agents' chats."""
        return Desk(self.tickets, self.registry, self.agents_translator, clock=self.clock)

    @property
    def agents_translator(self) -> Translator:
        """The agents' language (the desk, `lotse tickets`): LOTSE_LOCALE, German by default."""
        return translator(self.settings.locale)

    async def close(self) -> None:
        await self.service.close()  # stops following the knowledge, closes the store


async def build_app(
    settings: Settings,
    *,
    store: Store | None = None,
    registry: KnowledgeRegistry | None = None,
    clock: Callable[[], datetime] = utcnow,
    check: bool = True,
    hand_over: bool = True,
) -> App:
    """Load and validate the knowledge base (raises KnowledgeError), open the store (unless
    one is given), and build each part through its constructor. Tests may give a store or the
    knowledge registry (loaded once for many apps, or reloaded by the test: nothing here
    watches a given one), pin the clock the tickets read, or leave the connection check or
    the hand-over to agents out (then a user who asks for either gets the helpdesk's
    contact)."""
    problem = secret_problem(settings)
    if problem is not None:
        raise ConfigurationError(problem)
    watch = registry is None
    registry = registry or KnowledgeRegistry.load(settings.knowledge_dir)
    understander = build_understander(settings, registry.current)
    store = store or await Store.open(settings.database_url)
    profiles = ProfileHandler(
        lambda: registry.current.server,
        signing_certificate=settings.profile_signing_certificate,
        signing_key=settings.profile_signing_key,
    )

    async def resume(channel: str, user: str, guide: str | None, intro: str) -> list[Reply]:
        return await service.resume(channel, user, guide, intro)  # built below, used later

    tickets = build_tickets(settings, store, lambda: registry.current, resume=resume, clock=clock)
    handlers: dict[type[Action], ActionHandler] = {SendProfile: profiles}
    checker = None
    if check:
        # It reads the knowledge at every check: only the endpoints in service are reached.
        checker = CheckActionHandler(
            lambda: registry.current, timeout=settings.check_timeout, ca_file=settings.check_ca_file
        )
        # A broken mail server: the helpdesk must know (once per outage).
        handlers[RunCheck] = tickets.after_checks(checker) if hand_over else checker
    if hand_over:
        handlers[HandOver] = tickets.handle_hand_over
    # Without the hand-over, no relays, and hand-back links are refused like forged ones.
    middlewares: tuple[TurnMiddleware, ...] = (LinkTurns(tickets.links if hand_over else None),)
    if hand_over:
        middlewares = (TicketTurns(tickets), *middlewares)
    service = ConversationService(
        store,
        registry,
        understander,
        default_locale=settings.locale,
        handlers=handlers,
        middlewares=middlewares,
    )
    # The one subscriber to follow a reload; everything else reads `registry.current`.
    registry.on_reload(lambda _outcome, current: understander.use_knowledge(current))
    if watch:
        service.watch_knowledge()
    return App(settings, registry, store, understander, service, tickets, checker, clock)


def build_tickets(
    settings: Settings,
    store: Store,
    knowledge: Callable[[], KnowledgeBase],
    *,
    resume: Resume | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> TicketService:
    """Tickets for hand-over to agents; mail when LOTSE_HELPDESK_EMAIL and LOTSE_SMTP_URL are
    set, hand-back links when LOTSE_HANDOFF_SECRET is (and strong enough)."""
    mail = mail_settings(settings, knowledge().helpdesk.timezone)
    if settings.helpdesk_email and mail is None:
        log.warning(
            "LOTSE_HELPDESK_EMAIL is set but LOTSE_SMTP_URL is not: no ticket mail is queued "
            "(transcripts would pile up unsent)"
        )
    links = None
    if settings.handoff_secret is not None and settings.handoff_secret.get_secret_value():
        links = HandoffLinks(
            store,
            settings.handoff_secret.get_secret_value(),
            days=settings.handoff_link_days,
            mail=mail,
        )
    return TicketService(store, knowledge, mail=mail, links=links, resume=resume, clock=clock)
