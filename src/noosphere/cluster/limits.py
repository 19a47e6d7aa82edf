"""Rate limits across a cluster: a key's last minute lives in the shared store, one row per
second, and admitting a request is a transaction under the key's lock (read the window, decide
with the same pure ``admit`` one process uses, count the request), so N processes together never
let more than the key's requests or tokens per minute through. A second counts for a whole
minute after its end, so the shared window is never shorter than a minute (a refused request may
wait up to a second longer than on one process).

Concurrent admissions of one process share a transaction (group commit): the key's lock is taken
once for all of them, which is what lets one busy key go faster than a transaction per request."""

from __future__ import annotations

from noosphere.groupcommit import GroupCommit
from noosphere.pool.limits import Admission, Window, admit
from noosphere.store.postgres.cluster import PostgresCluster, RateAsk


class SharedRateLimiter:
    def __init__(self, store: PostgresCluster) -> None:
        self.store = store
        self._admissions: GroupCommit[RateAsk[Admission], Admission | Exception] = GroupCommit(
            store.rate_windows
        )
        self._charges: GroupCommit[tuple[str, int], None] = GroupCommit(self._charge)

    async def admit(self, key: str, rpm: int | None, tpm: int | None, tokens: int) -> Admission:
        def decide(now: float, entries: list[tuple[float, int, int]]) -> Admission:
            return admit(Window.of(entries, now), now, rpm, tpm, tokens)

        (decision,) = await self._admissions.submit(
            [RateAsk(key, decide, lambda d: tokens if d.allowed else None)]
        )
        if isinstance(decision, Exception):
            raise decision
        return decision

    async def add(self, key: str, tokens: int) -> None:
        if tokens > 0:
            await self._charges.submit([(key, tokens)])

    async def _charge(self, batch: list[tuple[str, int]]) -> list[None]:
        totals: dict[str, int] = {}
        for key, tokens in batch:
            totals[key] = totals.get(key, 0) + tokens
        await self.store.rate_charge(totals)
        return [None] * len(batch)


__all__ = ["SharedRateLimiter"]
