"""Trying a call again after a growing pause, for failures that pass by themselves: a database
locked for a moment, Telegram or the homeserver unreachable for a moment.

One helper for all of them, so the pauses (exponential, with jitter so that many callers do not
come back at the same instant) and the log line are the same everywhere.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["Backoff", "retry"]

T = TypeVar("T")
log = logging.getLogger(__name__)


class Backoff:
    """Exponential delays with jitter: `start`, doubled after every failure up to `maximum`."""

    def __init__(self, start: float = 0.5, maximum: float = 10.0) -> None:
        self.start = start
        self.maximum = maximum
        self._next = start

    def reset(self) -> None:
        self._next = self.start

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.maximum)
        return delay * random.uniform(0.8, 1.0)


async def retry(
    call: Callable[[], Awaitable[T]],
    *,
    retry_on: Callable[[Exception], bool],
    what: str,
    attempts: int | None = None,
    deadline: float | None = None,
    backoff: Backoff | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """`call()`, again after a pause while it fails with an error `retry_on` accepts, until
    `attempts` calls were made or the next one would start after `deadline` seconds from now;
    then the last error is raised. Other errors are raised at once."""
    backoff = backoff or Backoff()
    give_up_at = clock() + deadline if deadline is not None else None
    attempt = 0
    while True:
        attempt += 1
        try:
            return await call()
        except Exception as error:
            if not retry_on(error) or (attempts is not None and attempt >= attempts):
                raise
            delay = backoff.next_delay()
            if give_up_at is not None and clock() + delay > give_up_at:
                raise
            log.warning("%s failed (%s); trying again in %.2f s", what, _describe(error), delay)
            await asyncio.sleep(delay)


def _describe(error: Exception) -> str:
    # The class and the first line only: database errors quote statements and parameters.
    first_line = str(error).partition("\n")[0][:200]
    return f"{type(error).__name__}: {first_line}" if first_line else type(error).__name__
