"""Hybrid logical clock: versions that order like wall time but never go backwards.

A stamp is one integer: milliseconds since the epoch shifted left 16 bits, plus a logical counter
for events within the same millisecond (or while the wall clock lags a stamp seen from a peer).
Ties between nodes are broken by node id, outside this module.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

_LOGICAL_BITS = 16
_LOGICAL_MASK = (1 << _LOGICAL_BITS) - 1


def physical_ms(stamp: int) -> int:
    return stamp >> _LOGICAL_BITS


def stamp_at(ms: int) -> int:
    """The first stamp of a wall-clock millisecond."""
    return max(0, ms) << _LOGICAL_BITS


class HybridLogicalClock:
    def __init__(self, wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000) -> None:
        self._wall_ms = wall_ms
        self._last = 0
        self._lock = threading.Lock()

    def now(self) -> int:
        """A stamp greater than every stamp this clock has issued or observed."""
        with self._lock:
            candidate = self._wall_ms() << _LOGICAL_BITS
            self._last = candidate if candidate > self._last else self._last + 1
            return self._last

    def observe(self, stamp: int) -> None:
        """Advance past a stamp received from elsewhere."""
        with self._lock:
            self._last = max(self._last, stamp)
