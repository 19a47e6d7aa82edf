"""Blocking work (SQLite calls, embeddings) handed to threads of its own, awaited with one wake-up.

``anyio.to_thread.run_sync`` passes through the event loop twice before its thread starts (a
checkpoint, then the thread limiter) and once after. Each pass waits behind every callback ready
at that moment, so under a chat load that keeps the loop busy, a store call paid three passes: a
memory write or a bus send that takes several store calls waited tens of milliseconds for nothing
but its turns. ``Threads.run`` hands the call to its threads at once and wakes its caller once.
(Written here because the standard library's executor is the whole mechanism; this module only
fixes how it is awaited.)

A call once handed over runs to its end even if its caller is cancelled: a write is not torn off
half-way by a client that went away. The caller stops waiting; the result is dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class Threads:
    def __init__(self, name: str, size: int) -> None:
        self.name = name
        self._executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix=name)

    async def run(self, fn: Callable[[], T]) -> T:
        """``fn()`` on one of these threads."""
        return await asyncio.shield(asyncio.wrap_future(self._executor.submit(fn)))

    def close(self) -> None:
        """Finish what was handed over, then let the threads go."""
        self._executor.shutdown(wait=True)


__all__ = ["Threads"]
