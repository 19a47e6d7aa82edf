"""Values a running node remembers for a few seconds: verified tokens, derived conversation keys,
agent profiles. Each entry expires ``seconds`` after it was put; ``seconds`` of 0 remembers
nothing. Past ``limit`` entries the cache starts afresh (those of callers seen long ago go too).
Written here because the kept cache libraries are not on the node's dependency list, and this is
a dict with a clock."""

from __future__ import annotations

import time
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Expiring(Generic[K, V]):
    def __init__(self, seconds: float, limit: int = 10_000) -> None:
        self.seconds = seconds
        self._limit = limit
        self._entries: dict[K, tuple[V, float]] = {}

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]

    def put(self, key: K, value: V) -> None:
        if self.seconds <= 0:
            return
        if len(self._entries) >= self._limit:
            self._entries.clear()
        self._entries[key] = (value, time.monotonic() + self.seconds)

    def clear(self) -> None:
        self._entries.clear()


__all__ = ["Expiring"]
