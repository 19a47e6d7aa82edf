"""Credits held by requests in flight, per paying account, so that concurrent requests can never
spend past a budget: a request reserves what it may cost before it starts; once answered, its
actual cost is pending until its usage is written to the ledger.

``LocalCredits`` keeps the holds of one node process in memory. A cluster's processes share
theirs in PostgreSQL (``cluster/credits.py``): the same contract, atomic across processes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from noosphere.store.contract import Holds

# decide(spent, holds) -> credits to reserve; raises to refuse. ``spent``: the written usage of the
# budget's period.
Decide = Callable[[float, Holds], float]


class Credits(Protocol):
    async def reserve(
        self, account: str, period: str, written: Callable[[], Awaitable[float]], decide: Decide
    ) -> float:
        """Reserve ``decide(spent, holds)`` credits for a request of ``account``, atomically with
        the reading of ``spent`` (``written()``, or the store's own) and the holds."""

    async def settle(self, account: str, reserved: float, cost: float) -> None:
        """A request ended: its reservation becomes its ``cost``, pending until written."""

    def written(self, account: str, cost: float) -> None:
        """A request's usage was written (or given up): its cost is no longer pending."""

    async def holds(self, account: str) -> Holds: ...


class LocalCredits:
    """The holds of one process (no other process shares its ledger's budgets)."""

    def __init__(self) -> None:
        self._reserved: dict[str, float] = {}
        self._pending: dict[str, float] = {}

    async def reserve(
        self, account: str, period: str, written: Callable[[], Awaitable[float]], decide: Decide
    ) -> float:
        spent = await written()
        # No await between the decision and the reservation: atomic on the event loop.
        credits = decide(spent, self.now(account))
        _add(self._reserved, account, credits)
        return credits

    async def settle(self, account: str, reserved: float, cost: float) -> None:
        _add(self._reserved, account, -reserved)
        _add(self._pending, account, cost)

    def written(self, account: str, cost: float) -> None:
        _add(self._pending, account, -cost)

    async def holds(self, account: str) -> Holds:
        return self.now(account)

    def now(self, account: str) -> Holds:
        return Holds(self._reserved.get(account, 0.0), self._pending.get(account, 0.0))


def _add(totals: dict[str, float], account: str, credits: float) -> None:
    """Add to a running total, dropping it at zero (the maps hold only accounts in flight)."""
    value = totals.get(account, 0.0) + credits
    if abs(value) < 1e-9:
        totals.pop(account, None)
    else:
        totals[account] = value


__all__ = ["Credits", "Decide", "LocalCredits"]
