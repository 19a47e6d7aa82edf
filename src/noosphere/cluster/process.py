"""One process's part in a cluster, assembled: membership, leases, cross-process dispatch and the
shared fairness, limit and budget state, attached to this process's gateway."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from noosphere.cluster.counters import SharedCounters
from noosphere.cluster.credits import SharedCredits
from noosphere.cluster.dispatch import ClusterPool
from noosphere.cluster.leases import Leases
from noosphere.cluster.limits import SharedRateLimiter
from noosphere.cluster.membership import Membership, process_name
from noosphere.config import Settings
from noosphere.pool.gateway import Gateway
from noosphere.store.postgres.cluster import PostgresCluster
from noosphere.supervision import Supervisor


class ClusterProcess:
    def __init__(self, settings: Settings, store: PostgresCluster, gateway: Gateway, url: str) -> None:
        cluster = settings.cluster
        assert cluster is not None
        self.store = store
        self.name = process_name(cluster, settings.server.port)
        self.membership = Membership(store, cluster, self.name, url)
        self.id = self.membership.id
        self.leases = Leases(store, self.id, cluster.lease_seconds)
        self.pool = ClusterPool(
            gateway.scheduler,
            cluster.nats_url,
            settings.bus.nats_stream,
            self.id,
            self.name,
            cluster.heartbeat_seconds,
            cluster.dead_after_seconds,
        )
        self.counters = SharedCounters(gateway.scheduler, store, cluster.counters_sync_ms / 1000)
        self.credits = SharedCredits(store, self.id)
        gateway.cluster = self.pool
        gateway.limiter = SharedRateLimiter(store)
        gateway.ledger.shared = self.credits
        self.membership.on_rejoin.append(self.credits.restore)

    async def join(self, loops: Supervisor) -> None:
        await self.membership.join()
        loops.start("cluster_membership", self.membership.run)
        loops.start("cluster_pool", self.pool.run)
        loops.start("cluster_counters", self.counters.run)

    async def leave(self) -> None:
        await self.credits.close()
        await self.membership.leave()

    async def status(self) -> dict[str, Any]:
        """The cluster's processes as the store knows them, and who runs which once-per-cluster
        work (by process name)."""
        processes = await self.membership.processes()
        names = {p.id: p.name for p in processes}
        leases = await self.store.lease_holders()
        return {
            "process": {"id": self.id, "name": self.name},
            "processes": [
                {
                    "id": p.id,
                    "name": p.name,
                    "url": p.url,
                    "age_seconds": round(p.age, 1),
                    "silent_seconds": round(p.silent, 1),
                }
                for p in processes
            ],
            "leases": {lease: names.get(holder, holder) for lease, holder in leases.items()},
        }

    def once(self, loops: Supervisor, name: str, loop: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run ``loop`` in one process of the cluster at a time (this one while it holds the lease)."""
        loops.start(name, self.leases.holding, name, loop, *args)


__all__ = ["ClusterProcess"]
