"""The write-through turn cache: conversations kept in memory after a save, so the next turn
of the same user needs no read. Another instance's save is caught by the version check (the
back end's `continue_turn` returns the saved state, `finish_turn` raises `ConcurrentUpdate`).
"""

from __future__ import annotations

from collections import OrderedDict

from bot.storage.transactions import TurnStart

__all__ = ["TurnCache"]


class TurnCache:
    """The last saved turn of up to `size` users, least recently saved dropped first."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._turns: OrderedDict[tuple[str, str], TurnStart] = OrderedDict()

    def get(self, channel: str, external_id: str) -> TurnStart | None:
        return self._turns.get((channel, external_id))

    def saved(self, turn: TurnStart) -> None:
        """`turn` is what the database holds now."""
        key = (turn.channel, turn.external_id)
        self._turns[key] = turn
        self._turns.move_to_end(key)
        if len(self._turns) > self.size:
            self._turns.popitem(last=False)

    def forget(self, channel: str, external_id: str) -> None:
        """The next turn reads the database (deleted, blocked, saved elsewhere)."""
        self._turns.pop((channel, external_id), None)
