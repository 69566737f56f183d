"""Wiring: settings -> knowledge base, store, understanding -> conversation service."""

from __future__ import annotations

from bot.config import Settings
from bot.conversation import ConversationService
from bot.knowledge.base import KnowledgeBase
from bot.knowledge.loader import load_knowledge
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
    knowledge = load_knowledge(settings.knowledge_dir)
    understander = build_understander(settings, knowledge)
    store = await Store.open(settings.database_url)
    return ConversationService(store, knowledge, understander, default_locale=settings.locale)
