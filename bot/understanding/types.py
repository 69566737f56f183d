"""What understanding a message yields, shared by the lexicon and the Rasa back end."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol, get_args

__all__ = ["ENTITY_NAMES", "INTENTS", "Intent", "Understander", "Understanding"]

if TYPE_CHECKING:
    from bot.knowledge.base import KnowledgeBase

Intent = Literal[
    "greet",
    "goodbye",
    "thank",
    "affirm",
    "deny",
    "inform",
    "next_step",
    "previous_step",
    "repeat_step",
    "restart",
    "step_problem",
    "request_check",
    "request_human",
    "ask_settings",
    "ask_explanation",
    "delete_data",
    "bot_challenge",
    "out_of_scope",
]
INTENTS: tuple[str, ...] = get_args(Intent)
ENTITY_NAMES = ("client", "version", "protocol", "port", "security")


@dataclass(frozen=True)
class Understanding:
    text: str
    intent: Intent
    confidence: float
    # entity name (one of ENTITY_NAMES) -> normalised value, e.g. {"client": "outlook"}
    entities: dict[str, str] = field(default_factory=dict)
    guide: str | None = None
    # A second intent that scored almost as high: the engine asks "Meinten Sie …?".
    alternative: Intent | None = None
    # Which back end decided the intent ("lexicon" or "rasa"), for the metrics.
    source: str = "lexicon"

    def as_json(self) -> dict[str, object]:
        return {
            "text": self.text,
            "intent": self.intent,
            "confidence": round(self.confidence, 3),
            "entities": dict(self.entities),
            "guide": self.guide,
        }


class Understander(Protocol):
    """A back end that turns one message into an `Understanding`."""

    async def understand(self, text: str) -> Understanding: ...

    def use_knowledge(self, knowledge: KnowledgeBase) -> None:
        """Match against a reloaded knowledge base from now on."""
        ...
