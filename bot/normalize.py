"""Text normalisation shared by every matcher, so patterns and aliases see the same form (a leaf:
knowledge, understanding, engine and channels all use it; it imports nothing of Lotse)."""

from __future__ import annotations

import re
import unicodedata

__all__ = ["normalize", "words"]

_UMLAUTS = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})
# Keep letters, digits, dots inside numbers ("10.11") and hyphens inside words ("E-Mail").
_WORD = re.compile(r"\d+(?:\.\d+)*|[^\W_]+(?:[-'][^\W_]+)*")


def normalize(text: str) -> str:
    """Case-fold, spell umlauts out (users type both "zurück" and "zurueck"), drop punctuation."""
    text = unicodedata.normalize("NFKC", text).casefold().translate(_UMLAUTS)
    return " ".join(_WORD.findall(text))


def words(text: str) -> list[str]:
    return normalize(text).split()
