"""Answers by option: the user typed an option's number or text, or tapped its button.

An option's payload names an intent and optional entities: "next_step", "inform:client=outlook",
"inform:guide=outlook-2003", "ask_explanation:faq=why-encrypt". It stays short for Telegram's
64-byte callback data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from bot.engine.state import Option
from bot.normalize import normalize
from bot.numbers import ascii_number
from bot.understanding.types import INTENTS, Intent, Understanding

__all__ = ["match_option", "understanding_from_payload"]


def understanding_from_payload(payload: str, text: str | None = None) -> Understanding | None:
    """The `Understanding` an option stands for; None for a payload that is not ours."""
    intent, _, argument = payload.partition(":")
    if intent not in INTENTS:
        return None
    entities: dict[str, str] = {}
    guide: str | None = None
    if argument:
        key, _, value = argument.partition("=")
        if not value:
            return None
        if key == "guide":
            guide = value
        else:
            entities[key] = value
    return Understanding(text or payload, cast(Intent, intent), 1.0, entities, guide)


def match_option(options: Sequence[Option], text: str) -> Option | None:
    """The option a typed answer picks: its number ("2", "2.") or its label, case-insensitively."""
    answer = text.strip().rstrip(".)")
    number = ascii_number(answer)
    if number is not None:
        index = number - 1
        return options[index] if 0 <= index < len(options) else None
    said = normalize(text)
    return next((o for o in options if said and normalize(o.label) == said), None)
