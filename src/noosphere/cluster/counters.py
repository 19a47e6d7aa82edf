"""Fairness across a cluster: every user's virtual token counter (``pool/fairness.py``) lives in
the shared store. Each process counts the service its requests receive as before, and every
``counters_sync_ms`` adds what it counted to the shared counters in one transaction and reads
back those of the users it has waiting or running. So a user who is served through one process
is not favoured by another: a process's next job goes to the user with the smallest
cluster-wide counter among those waiting there, within one sync period of exact."""

from __future__ import annotations

import anyio

from noosphere.pool.scheduler import Scheduler
from noosphere.store.postgres.cluster import PostgresCluster


class SharedCounters:
    def __init__(self, scheduler: Scheduler, store: PostgresCluster, period: float) -> None:
        self.scheduler = scheduler
        self.store = store
        self.period = period
        scheduler.unshared = {}

    async def run(self) -> None:
        while True:
            await anyio.sleep(self.period)
            await self.sync()

    async def sync(self) -> None:
        """Add the service counted here since the last sync; read the active users' counters."""
        scheduler = self.scheduler
        counted, scheduler.unshared = scheduler.unshared or {}, {}
        floors, scheduler.lifted = scheduler.lifted, {}
        deltas = dict.fromkeys(scheduler.active_users(), 0.0) | counted
        if not deltas and not floors:
            return
        try:
            shared = await self.store.add_service(deltas, floors)
        except BaseException:  # not added: keep it for the next sync
            for user, amount in counted.items():
                scheduler.unshared[user] = scheduler.unshared.get(user, 0.0) + amount
            for user, floor in floors.items():
                scheduler.lifted[user] = max(floor, scheduler.lifted.get(user, 0.0))
            raise
        unshared = scheduler.unshared
        for user, value in shared.items():  # plus what was counted while the sync ran
            scheduler.counters[user] = value + unshared.get(user, 0.0)
        scheduler.dispatch()


__all__ = ["SharedCounters"]
