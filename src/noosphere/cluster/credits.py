"""Budgets across a cluster: the credits that requests in flight hold (``pool/credits.py``) are
rows of the shared store, one per paying account and process. Reserving reads the account's
written usage and every process's holds and adds the reservation in one transaction under the
account's lock, so concurrent requests through any number of processes never spend more than the
budget. Releasing a hold is never less safe late than early (a late release only refuses more),
so written usage is released in batches off the request's path. A process taken for dead has
its holds dropped with it (``membership.py``); one that was only stalled writes them back when it
rejoins (``restore``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from noosphere.pool.credits import Decide
from noosphere.store.contract import Holds
from noosphere.store.postgres.cluster import PostgresCluster

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 0.05


class SharedCredits:
    def __init__(self, store: PostgresCluster, process: str) -> None:
        self.store = store
        self.process = process
        self._released: dict[str, float] = {}  # written costs not yet taken off the pending holds
        self._flush: asyncio.Task[None] | None = None
        self._mine: dict[str, tuple[float, float]] = {}  # what this process holds: (reserved, pending)

    async def reserve(
        self, account: str, period: str, written: Callable[[], Awaitable[float]], decide: Decide
    ) -> float:
        credits = await self.store.hold_credits(account, self.process, period, decide)
        self._note(account, credits, 0.0)
        return credits

    async def settle(self, account: str, reserved: float, cost: float) -> None:
        await self.store.move_credits(self.process, {account: (-reserved, cost)})
        self._note(account, -reserved, cost)

    def written(self, account: str, cost: float) -> None:
        self._note(account, 0.0, -cost)
        self._released[account] = self._released.get(account, 0.0) + cost
        if self._flush is None or self._flush.done():
            self._flush = asyncio.get_running_loop().create_task(self._release())

    async def holds(self, account: str) -> Holds:
        return await self.store.credit_holds(account)

    async def restore(self) -> None:
        """Write back what this process holds (after the cluster took it for dead and dropped
        its holds): whatever releases were waiting are already taken off."""
        self._released.clear()
        await self.store.set_credits(self.process, self._mine)

    def _note(self, account: str, reserved: float, pending: float) -> None:
        held = self._mine.get(account, (0.0, 0.0))
        now = (held[0] + reserved, held[1] + pending)
        if abs(now[0]) < 1e-9 and abs(now[1]) < 1e-9:
            self._mine.pop(account, None)
        else:
            self._mine[account] = now

    async def _release(self) -> None:
        await asyncio.sleep(FLUSH_SECONDS)
        while self._released:
            batch, self._released = self._released, {}
            try:
                await self.store.move_credits(self.process, {a: (0.0, -c) for a, c in batch.items()})
            except Exception:  # the holds stay high (refusing more, never less) until it works
                logger.warning("could not release written credits; trying again", exc_info=True)
                for account, cost in batch.items():
                    self._released[account] = self._released.get(account, 0.0) + cost
                await asyncio.sleep(1.0)

    async def close(self) -> None:
        if self._flush is not None:
            await self._flush


__all__ = ["SharedCredits"]
