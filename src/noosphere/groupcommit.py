"""Group commit: concurrent writers share one transaction instead of queueing for one each.

Each ``submit`` adds its items to the open batch and waits until a single call of ``flush`` has
written that batch; every submitter then gets back the results for its own items. Under load one
transaction carries many writers' items; alone, a writer pays for one transaction as before. With a
``delay``, a batch stays open that long after its first item, so that even a lightly loaded writer
shares transactions; ``add`` hands back the future instead of waiting for it.
(Written here because no maintained asyncio library offers this; it is a few lines of futures.)
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    def __init__(
        self, flush: Callable[[list[T]], Awaitable[list[R]]], max_batch: int = 2000, delay: float = 0.0
    ) -> None:
        self._flush = flush
        self._max_batch = max_batch
        self._delay = delay
        self._pending: deque[tuple[Sequence[T], asyncio.Future[list[R]]]] = deque()
        self._writer: asyncio.Task[None] | None = None

    def add(self, items: Sequence[T]) -> asyncio.Future[list[R]]:
        """Put ``items`` in the open batch; the future holds their results once written."""
        future: asyncio.Future[list[R]] = asyncio.get_running_loop().create_future()
        if not items:
            future.set_result([])
            return future
        self._pending.append((items, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())
        return future

    async def submit(self, items: Sequence[T]) -> list[R]:
        # A cancelled submitter leaves its items in the batch: they are written all the same.
        return await asyncio.shield(self.add(items))

    async def _drain(self) -> None:
        if self._delay:
            await asyncio.sleep(self._delay)
        while self._pending:
            taken: list[tuple[Sequence[T], asyncio.Future[list[R]]]] = []
            size = 0
            while self._pending and (not taken or size + len(self._pending[0][0]) <= self._max_batch):
                entry = self._pending.popleft()
                taken.append(entry)
                size += len(entry[0])
            flat = [item for items, _ in taken for item in items]
            try:
                results = await self._flush(flat)
            except Exception as exc:  # noqa: BLE001 - handed to every submitter of the batch, which re-raises it
                for _, future in taken:
                    if not future.done():
                        future.set_exception(exc)
                continue
            start = 0
            for items, future in taken:
                if not future.done():
                    future.set_result(results[start : start + len(items)])
                start += len(items)

    async def close(self) -> None:
        """Wait for what was submitted to be written."""
        if self._writer is not None:
            await asyncio.shield(self._writer)


__all__ = ["GroupCommit"]
