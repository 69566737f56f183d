"""Wiring: settings -> knowledge base, store, understanding -> conversation service."""

from __future__ import annotations

import logging

from bot.check.handler import CheckActionHandler
from bot.config import Settings
from bot.conversation import ConversationService
from bot.engine.decision import RunCheck, SendProfile
from bot.knowledge.base import KnowledgeBase
from bot.knowledge.registry import KnowledgeRegistry, ReloadOutcome
from bot.profiles.handler import ProfileHandler
from bot.storage.store import Store
from bot.tickets.links import HandoffLinks, secret_problem
from bot.tickets.records import MailSettings
from bot.tickets.service import TicketService
from bot.understanding.lexicon import LexiconUnderstander
from bot.understanding.types import Understander

log = logging.getLogger(__name__)


class ConfigurationError(Exception):
    """A setting cannot work; the message says which and why."""


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


async def build_service(settings: Settings) -> ConversationService:
    """Load and validate the knowledge base (raises KnowledgeError), open the store."""
    registry = KnowledgeRegistry.load(settings.knowledge_dir)
    understander = build_understander(settings, registry.current)
    store = await Store.open(settings.database_url)
    service = ConversationService(store, registry, understander, default_locale=settings.locale)
    service.register(
        SendProfile,
        ProfileHandler(
            lambda: service.knowledge.server,
            signing_certificate=settings.profile_signing_certificate,
            signing_key=settings.profile_signing_key,
        ),
    )
    check = CheckActionHandler(
        registry.current, timeout=settings.check_timeout, ca_file=settings.check_ca_file
    )
    service.register(RunCheck, check)

    def follow_reloads(_outcome: ReloadOutcome, current: KnowledgeBase) -> None:
        understander.use_knowledge(current)
        check.knowledge = current  # the check reaches only the endpoints in the knowledge base

    registry.on_reload(follow_reloads)
    build_tickets(settings, service)
    service.watch_knowledge()
    return service


def build_tickets(settings: Settings, service: ConversationService) -> TicketService:
    """Tickets for hand-over to agents; mail when LOTSE_HELPDESK_EMAIL and LOTSE_SMTP_URL are
    set, hand-back links when LOTSE_HANDOFF_SECRET is (and strong enough)."""
    problem = secret_problem(settings)
    if problem is not None:
        raise ConfigurationError(problem)
    mail = mail_settings(settings, service.knowledge.helpdesk.timezone)
    if settings.helpdesk_email and mail is None:
        log.warning(
            "LOTSE_HELPDESK_EMAIL is set but LOTSE_SMTP_URL is not: no ticket mail is queued "
            "(transcripts would pile up unsent)"
        )
    tickets = TicketService(service.store, lambda: service.knowledge, mail=mail)
    if settings.handoff_secret is not None and settings.handoff_secret.get_secret_value():
        tickets.links = HandoffLinks(
            service.store,
            settings.handoff_secret.get_secret_value(),
            days=settings.handoff_link_days,
            mail=mail,
        )
    tickets.attach(service)
    return tickets


def mail_settings(settings: Settings, timezone: str) -> MailSettings | None:
    """Where ticket mail goes; None (nothing queued) without a helpdesk address or without a
    mail server to deliver to."""
    if not settings.helpdesk_email or settings.smtp_url is None:
        return None
    return MailSettings(
        recipient=settings.helpdesk_email, sender=settings.mail_from, timezone=timezone
    )
