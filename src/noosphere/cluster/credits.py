"""Budgets across a cluster: the credits that requests in flight hold (``pool/credits.py``) are
rows of the shared store, one per paying account and process. Reserving reads the account's
written usage and every process's holds and adds the reservation in one transaction under the
account's lock, so concurrent requests through any number of processes never spend more than the
budget; concurrent reservations of one process share that transaction (group commit), taking the
lock once. Releasing a hold is never less safe late than early (a late release only refuses
more), so settled and written usage is released in batches off the request's path. A process
taken for dead has its holds dropped with it (``membership.py``); one that was only stalled writes
them back when it rejoins (``restore``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from noosphere.groupcommit import GroupCommit
from noosphere.pool.credits import Decide
from noosphere.store.contract import Holds
from noosphere.store.postgres.cluster import CreditAsk, PostgresCluster

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 0.05


class SharedCredits:
    def __init__(self, store: PostgresCluster, process: str) -> None:
        self.store = store
        self.process = process
        # Changes to this process's holds not written yet: account → (reserved, pending) deltas.
        # Each only lowers what is held (a request costs at most what it reserved).
        self._released: dict[str, tuple[float, float]] = {}
        self._flush: asyncio.Task[None] | None = None
        self._mine: dict[str, tuple[float, float]] = {}  # what this process holds: (reserved, pending)
        self._reservations: GroupCommit[CreditAsk, float | Exception] = GroupCommit(self._hold)

    async def reserve(
        self, account: str, period: str, written: Callable[[], Awaitable[float]], decide: Decide
    ) -> float:
        (credits,) = await self._reservations.submit([CreditAsk(account, period, decide)])
        if isinstance(credits, Exception):
            raise credits
        return credits

    async def _hold(self, asks: list[CreditAsk]) -> list[float | Exception]:
        granted = await self.store.hold_credits(self.process, asks)
        for ask, credits in zip(asks, granted, strict=True):
            if not isinstance(credits, Exception):
                self._note(ask.account, credits, 0.0)
        return granted

    async def settle(self, account: str, reserved: float, cost: float) -> None:
        self._release_later(account, -reserved, cost)

    def written(self, account: str, cost: float) -> None:
        self._release_later(account, 0.0, -cost)

    def _release_later(self, account: str, reserved: float, pending: float) -> None:
        self._note(account, reserved, pending)
        before = self._released.get(account, (0.0, 0.0))
        self._released[account] = (before[0] + reserved, before[1] + pending)
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
                await self.store.move_credits(self.process, batch)
            except Exception:  # the holds stay high (refusing more, never less) until it works
                logger.warning("could not release held credits; trying again", exc_info=True)
                for account, (reserved, pending) in batch.items():
                    before = self._released.get(account, (0.0, 0.0))
                    self._released[account] = (before[0] + reserved, before[1] + pending)
                await asyncio.sleep(1.0)

    async def close(self) -> None:
        if self._flush is not None:
            await self._flush


__all__ = ["SharedCredits"]
