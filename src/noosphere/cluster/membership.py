"""This process's place in a cluster: registered under a fresh id when it starts, kept alive by
a heartbeat in the shared store, and forgotten (with its leases and held credits) once it has
been silent for ``dead_after_seconds``. Any process reaps the silent ones; the database's clock
decides, so machines whose clocks disagree still agree on who is alive."""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable

import anyio

from noosphere.config import ClusterSettings
from noosphere.ids import unique_hex
from noosphere.store.postgres.cluster import PostgresCluster, ProcessRecord

logger = logging.getLogger(__name__)
FORGET_EVERY = 60  # heartbeats between two purges of what the cluster has seen once


def process_name(settings: ClusterSettings, port: int) -> str:
    return settings.process_name or f"{socket.gethostname()}:{port}"


class Membership:
    def __init__(self, store: PostgresCluster, settings: ClusterSettings, name: str, url: str) -> None:
        self.store = store
        self.settings = settings
        self.name = name
        self.url = url
        self.id = "proc-" + unique_hex()[:16]
        # Called after this process rejoins, having been taken for dead (and its holds dropped).
        self.on_rejoin: list[Callable[[], Awaitable[None]]] = []

    async def join(self) -> None:
        await self.store.join_cluster(self.id, self.name, self.url)
        logger.info("joined the cluster as %s (%s)", self.id, self.name)

    async def leave(self) -> None:
        await self.store.leave_cluster(self.id)

    async def run(self) -> None:
        """Heartbeat and reap, forever. A process that finds itself reaped (it was stalled past
        ``dead_after_seconds``) joins again under its id: what it held was released meanwhile.
        Every ``FORGET_EVERY`` beats it also drops the nonces and keys that may be forgotten."""
        beats = 0
        while True:
            if not await self.store.beat(self.id):
                logger.warning("this process was taken for dead by the cluster; joining again")
                await self.join()
                for rejoined in self.on_rejoin:
                    await rejoined()
            dead = await self.store.reap_processes(self.settings.dead_after_seconds)
            if dead:
                logger.warning("cluster processes gone silent: %s", ", ".join(dead))
            beats += 1
            if beats % FORGET_EVERY == 0:
                await self.store.forget_seen()
            await anyio.sleep(self.settings.heartbeat_seconds)

    async def processes(self) -> list[ProcessRecord]:
        return await self.store.cluster_processes()


__all__ = ["Membership", "process_name"]
