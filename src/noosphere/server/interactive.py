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
limit grows by one. Chats past the limit wait in arrival order and start as soon as one ends, the
limit grows, or the calls stop. The limit applies only while both hold, calls arriving and a late
loop: chats against a slow upstream (seconds per answer, the loop idle) and a node serving only
chats are never held back.

A call counts once its caller is authenticated (``deps.get_principal`` for ``/api/``, ``McpAuth``
for ``/mcp``), so requests without valid credentials cannot hold chats back. Only a call's
arrival counts, not its duration, so a long-poll or an agent run that streams for
minutes does not hold chats back. (Written here because no kept library schedules requests by
traffic class inside one asyncio loop; the controller is the one TCP and concurrency limiters use.)
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

from noosphere.errors import RateLimited

WINDOW = 0.1  # a call arrived this recently: calls are arriving
SAMPLE = 0.01  # how often the loop's lateness is measured while they are
TARGET_LAG = 0.002  # later than this, the loop is crowded
UNLIMITED = 1 << 30


class InteractiveFirst:
    def __init__(
        self, streams: int, max_waiting: int = 1000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.streams = streams  # the fewest chats running at once when limited; 0: never limit
        self.max_waiting = max_waiting  # past it, a chat is refused (429) as the pool's queue does
        self.limit = UNLIMITED
        self._clock = clock
        self._last_call = -float("inf")
        self._running = 0
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._sampler: asyncio.Task[None] | None = None

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def last_call(self) -> float:
        return self._last_call

    def call_arrived(self) -> None:
        """A memory, bus, approval or agent call has just arrived, its caller authenticated
        (called on the event loop)."""
        if self.streams == 0:
            return
        self._last_call = self._clock()
        if self._sampler is None or self._sampler.done():
            self._sampler = asyncio.get_running_loop().create_task(self._sample())

    def _calls_arriving(self) -> bool:
        return self._clock() < self._last_call + WINDOW

    async def start_chat(self) -> None:
        """Wait for a chat's turn; pair with ``end_chat``."""
        if self.streams == 0:
            return
        if not self._waiting and self._running < self.limit:
            self._running += 1
            return
        if len(self._waiting) >= self.max_waiting:
            raise RateLimited(f"{len(self._waiting)} chats are already waiting for their turn", retry_after=5)
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():  # given a turn it will not use
                self.end_chat()
            else:
                self._waiting.remove(turn)
            raise

    def end_chat(self) -> None:
        if self.streams == 0:
            return
        self._running -= 1
        self._admit()

    def _admit(self) -> None:
        while self._waiting and self._running < self.limit:
            turn = self._waiting.popleft()
            if not turn.done():
                self._running += 1
                turn.set_result(None)

    def adjust(self, lag: float) -> None:
        """One measurement of the loop's lateness while calls are arriving."""
        if lag > TARGET_LAG:
            self.limit = max(self.streams, min(self.limit, self._running) // 2)
        elif self.limit < UNLIMITED:
            self.limit += 1
        self._admit()

    def _release(self) -> None:
        """The calls stopped: chats are not limited."""
        self.limit = UNLIMITED
        self._admit()

    async def _sample(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._calls_arriving():
                asked = loop.time()
                await asyncio.sleep(SAMPLE)
                self.adjust(loop.time() - asked - SAMPLE)
        finally:
            self._release()


__all__ = ["SAMPLE", "TARGET_LAG", "UNLIMITED", "WINDOW", "InteractiveFirst"]
