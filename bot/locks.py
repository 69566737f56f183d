"""One asyncio lock per key (a user), kept only while someone holds or waits for it.

A leaf module: the conversation service and the channels each keep one user's messages in
order with it. asyncio.Lock is first come, first served, so turns run in arrival order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Generic, TypeVar
from weakref import WeakValueDictionary

__all__ = ["KeyedLocks"]

K = TypeVar("K", bound=Hashable)


class KeyedLocks(Generic[K]):
    """`locks[key]` is the key's lock; forgotten once nobody references it any more."""

    def __init__(self) -> None:
        self._locks: WeakValueDictionary[K, asyncio.Lock] = WeakValueDictionary()

    def __getitem__(self, key: K) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock
