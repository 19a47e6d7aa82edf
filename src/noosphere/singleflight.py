"""Concurrent reads of the same key share one read.

When a cached value (a token's principal, a key's balance) expires under load, every request in
flight would otherwise read it again at once, each a trip through the store's one thread, in
front of the writes the answers wait for. Written here because the kept libraries for this
(``async-lru``, ``aiocache``) bring a cache of their own, and these callers keep theirs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    def __init__(self) -> None:
        self._running: dict[K, asyncio.Task[V]] = {}

    async def do(self, key: K, read: Callable[[], Awaitable[V]]) -> V:
        """``read()``'s result, shared with every caller asking for ``key`` while it runs. The
        read belongs to no caller: one that is cancelled does not cancel it for the others."""
        task = self._running.get(key)
        if task is None:
            task = asyncio.ensure_future(read())
            self._running[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        return await asyncio.shield(task)

    def _finished(self, key: K, task: asyncio.Task[V]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        if not task.cancelled():
            task.exception()  # retrieved here too, for when every caller went away


__all__ = ["SingleFlight"]
