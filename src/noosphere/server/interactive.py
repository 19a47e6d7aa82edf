"""Memory, bus, approval and agent calls first: when chats crowd the event loop, chats take turns.

One event loop serves every request. A flood of chat completions (a script, a benchmark, many
users at once) can keep it busy all the time, and each step of a memory write or a bus send then
waits behind a full pass of chat work: measured on 2 cores, a bus send went from 3 ms alone to
35-50 ms under eight streaming chat clients. The calls agents make to remember and to coordinate
are short and latency-bound; chat completions are bulk.

So, while such calls are arriving (one started within ``WINDOW`` seconds), the node measures how
late its event loop runs (a timer every ``SAMPLE`` seconds) and limits how many chat completions
run at once, additive-increase/multiplicative-decrease: when the loop is more than ``TARGET_LAG``
late, the limit drops to half the chats running (never below ``streams``); when it is on time, the
limit grows by one. This module only decides the limit; the pool's scheduler enforces it
(``Scheduler.limit_bulk``), so chats past it wait in the pool's queue, in the same fair order
and under the same bound and deadline as when workers are busy, and a chat whose client leaves
while it waits is dropped from there. The limit applies only while both hold, calls arriving and
a late loop: chats against a slow upstream (seconds per answer, the loop idle) and a node serving
only chats are never held back.

A call counts once its caller is authenticated (``deps.get_principal`` for ``/api/``, ``McpAuth``
for ``/mcp``), so requests without valid credentials cannot hold chats back. Only a call's
arrival counts, not its duration, so a long-poll or an agent run that streams for
minutes does not hold chats back. (Written here because no kept library schedules requests by
traffic class inside one asyncio loop; the controller is the one TCP and concurrency limiters use.)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

from noosphere.pool.scheduler import UNLIMITED

WINDOW = 0.1  # a call arrived this recently: calls are arriving
SAMPLE = 0.01  # how often the loop's lateness is measured while they are
TARGET_LAG = 0.002  # later than this, the loop is crowded


class BulkLimited(Protocol):
    """What enforces the limit: the pool's scheduler."""

    @property
    def bulk_running(self) -> int: ...

    @property
    def bulk_limit(self) -> int: ...

    def limit_bulk(self, limit: int) -> None: ...


class InteractiveFirst:
    def __init__(self, streams: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.streams = streams  # the fewest chats running at once when limited; 0: never limit
        self._clock = clock
        self._last_call = -float("inf")
        self._pool: BulkLimited | None = None
        self._sampler: asyncio.Task[None] | None = None

    @property
    def limit(self) -> int:
        """The limit in force: the pool's own (it enforces it), none without a pool."""
        return UNLIMITED if self._pool is None else self._pool.bulk_limit

    @property
    def last_call(self) -> float:
        return self._last_call

    def govern(self, pool: BulkLimited | None) -> None:
        """Limit ``pool``'s chats from now on (None: the node is closing)."""
        self._pool = pool

    def call_arrived(self) -> None:
        """A memory, bus, approval or agent call has just arrived, its caller authenticated
        (called on the event loop)."""
        if self.streams == 0 or self._pool is None:
            return
        self._last_call = self._clock()
        if self._sampler is None or self._sampler.done():
            self._sampler = asyncio.get_running_loop().create_task(self._sample())

    def _calls_arriving(self) -> bool:
        return self._clock() < self._last_call + WINDOW

    def adjust(self, lag: float) -> None:
        """One measurement of the loop's lateness while calls are arriving."""
        if self._pool is None:
            return
        limit = self._pool.bulk_limit
        if lag > TARGET_LAG:
            self._pool.limit_bulk(max(self.streams, min(limit, self._pool.bulk_running) // 2))
        elif limit < UNLIMITED:
            self._pool.limit_bulk(limit + 1)

    def release(self) -> None:
        """The calls stopped: chats are not limited."""
        if self._pool is not None:
            self._pool.limit_bulk(UNLIMITED)

    async def _sample(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._calls_arriving() and self._pool is not None:
                asked = loop.time()
                await asyncio.sleep(SAMPLE)
                self.adjust(loop.time() - asked - SAMPLE)
        finally:
            self.release()


__all__ = ["SAMPLE", "TARGET_LAG", "UNLIMITED", "WINDOW", "BulkLimited", "InteractiveFirst"]
