"""Wiring: settings -> knowledge base, store, understanding -> conversation service."""

from __future__ import annotations

from bot.config import Settings
from bot.conversation import ConversationService
from bot.engine.decision import SendProfile
from bot.knowledge.base import KnowledgeBase
from bot.knowledge.registry import KnowledgeRegistry
from bot.profiles.handler import ProfileHandler
from bot.storage.store import Store
from bot.understanding.lexicon import LexiconUnderstander
from bot.understanding.types import Understander


class ConfigurationError(Exception):
    """A setting cannot work; the message says which and why."""


def build_understander(settings: Settings, knowledge: KnowledgeBase) -> Understander:
    if settings.nlu == "rasa":
        raise ConfigurationError(
            "LOTSE_NLU=rasa: the Rasa back end is not part of this version yet; "
            "use LOTSE_NLU=lexicon (the default)."
        )
    return LexiconUnderstander(knowledge)


async def build_service(settings: Settings) -> ConversationService:
    """Load and validate the knowledge base (raises KnowledgeError), open the store."""
    registry = KnowledgeRegistry.load(settings.knowledge_dir)
    understander = build_understander(settings, registry.current)
    registry.on_reload(lambda outcome, current: understander.use_knowledge(current))
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
    service.watch_knowledge()
    return service
