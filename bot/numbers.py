"""Numbers in text that others wrote (users, agents, button data, servers): ASCII digits only,
and bounded. `str.isdigit()` also accepts "²" (then `int()` raises) and "١٢" (then `int()`
reads a number nobody typed as one), and an unbounded `int()` parses megabytes of digits."""

from __future__ import annotations

__all__ = ["DIGITS", "MAX_DIGITS", "ascii_number"]

MAX_DIGITS = 9  # ticket numbers, option numbers: far more than ever needed
DIGITS = "[0-9]"  # for regular expressions: `\d` matches every script's digits


def ascii_number(text: str, max_digits: int = MAX_DIGITS) -> int | None:
    """ "12" -> 12; None for anything else: "", "²", "١٢", "+1", " 1", "1_000", too long."""
    if not 0 < len(text) <= max_digits or not text.isascii() or not text.isdigit():
        return None
    return int(text)
