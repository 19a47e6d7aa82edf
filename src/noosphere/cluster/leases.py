"""Once-per-cluster work: a loop that must run in one process at a time (the approval sweep, the
audit log's signer, serving one agent's mailbox) runs while its process holds the loop's lease
in the shared store, renewed every third of ``lease_seconds``. When the holder stops or stalls,
the lease runs out and another process takes the work over within about ``lease_seconds``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from noosphere.store.postgres.cluster import PostgresCluster

logger = logging.getLogger(__name__)


class Leases:
    def __init__(self, store: PostgresCluster, holder: str, seconds: float) -> None:
        self.store = store
        self.holder = holder
        self.seconds = seconds
        self.held: set[str] = set()  # leases this process holds now

    async def take(self, name: str) -> bool:
        """Hold (or keep holding) ``name``; False while another process holds it."""
        if await self.store.take_lease(name, self.holder, self.seconds):
            self.held.add(name)
            return True
        self.held.discard(name)
        return False

    async def drop(self, name: str) -> None:
        self.held.discard(name)
        await self.store.drop_lease(name, self.holder)

    async def holding(self, name: str, work: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run ``work(*args)`` whenever this process holds lease ``name``, forever: wait for the
        lease, run the work while renewing it, and stop the work at once if a renewal fails (the
        lease ran out: another process may have the work now)."""
        period = self.seconds / 3
        while True:
            while not await self.take(name):  # noqa: ASYNC110 - the lease is in another process's hands
                await anyio.sleep(period)
            logger.info("this process now runs %s for the cluster", name)
            try:
                async with anyio.create_task_group() as group:
                    group.start_soon(self._renew, name, period, group.cancel_scope)
                    await work(*args)
                    group.cancel_scope.cancel()
                    return
            finally:
                with anyio.CancelScope(shield=True):
                    await self.drop(name)

    async def _renew(self, name: str, period: float, scope: anyio.CancelScope) -> None:
        while True:
            await anyio.sleep(period)
            if not await self.take(name):
                logger.warning("lost the lease of %s; another process takes it over", name)
                scope.cancel()
                return


__all__ = ["Leases"]
