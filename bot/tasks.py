"""Stopping background tasks (a leaf every package may import: it imports nothing of Lotse)."""

from __future__ import annotations

import asyncio
from contextlib import suppress
from typing import Any

__all__ = ["cancel_and_wait"]


async def cancel_and_wait(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel `tasks` (None is skipped) and wait until each has ended, so nothing they hold is
    still in use when the caller goes on to close it."""
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    for task in running:
        with suppress(asyncio.CancelledError):
            await task
