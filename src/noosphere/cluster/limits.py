"""Rate limits across a cluster: a key's last minute lives in the shared store, one row per
second, and admitting a request is one transaction under the key's lock (read the window, decide
with the same pure ``admit`` one process uses, count the request), so N processes together never
let more than the key's requests or tokens per minute through. A second counts for a whole
minute after its end, so the shared window is never shorter than a minute (a refused request may
wait up to a second longer than on one process)."""

from __future__ import annotations

from noosphere.pool.limits import Admission, Window, admit
from noosphere.store.postgres.cluster import PostgresCluster


class SharedRateLimiter:
    def __init__(self, store: PostgresCluster) -> None:
        self.store = store

    async def admit(self, key: str, rpm: int | None, tpm: int | None, tokens: int) -> Admission:
        def decide(now: float, entries: list[tuple[float, int, int]]) -> Admission:
            return admit(Window.of(entries, now), now, rpm, tpm, tokens)

        return await self.store.rate_window(key, decide, lambda d: tokens if d.allowed else None)

    async def add(self, key: str, tokens: int) -> None:
        if tokens > 0:
            await self.store.rate_charge(key, tokens)


__all__ = ["SharedRateLimiter"]
