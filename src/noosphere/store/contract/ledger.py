"""API keys, requests' usage and the double-entry ledger with its running balances."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from noosphere.pool.budget import BudgetPeriod, periods_of


@dataclass(frozen=True)
class ApiKeyRecord:
    id: str
    user_id: str
    name: str
    token_hash: str
    key_salt: bytes
    rpm: int | None
    tpm: int | None
    budget: float | None  # credits; None = unlimited
    created_at: datetime
    revoked: bool = False
    budget_period: BudgetPeriod = "total"
    capture: bool = False  # keep this key's chat exchanges as conversation memories


@dataclass(frozen=True)
class Holds:
    """Credits of one paying account held by requests in flight: ``reserved`` while they run (what
    they may cost at most), ``pending`` once answered until their usage is written."""

    reserved: float = 0.0
    pending: float = 0.0


@dataclass(frozen=True)
class UsageRecord:
    id: str
    at: datetime
    principal: str
    key_id: str | None
    model: str
    worker: str | None
    prompt_tokens: int  # counted by the gateway
    completion_tokens: int  # counted by the gateway
    reported_prompt: int | None  # what the worker said
    reported_completion: int | None
    credits: float
    status: str  # ok | failed | cancelled

    def row(self, at: object) -> list[object]:
        """Its values in ``USAGE_COLUMNS`` order, with ``at`` as the backend stores time."""
        return [
            self.id,
            at,
            self.principal,
            self.key_id,
            self.model,
            self.worker,
            self.prompt_tokens,
            self.completion_tokens,
            self.reported_prompt,
            self.reported_completion,
            self.credits,
            self.status,
        ]


USAGE_COLUMNS = (
    "id, at, principal, key_id, model, worker, prompt_tokens, completion_tokens, reported_prompt, "
    "reported_completion, credits, status"
)


# A request's usage and its ledger entries (account, amount), which sum to zero.
Charge = tuple[UsageRecord, Sequence[tuple[str, float]]]


def check_balanced(batch: Sequence[Charge]) -> None:
    """Refuse a batch in which some request's ledger entries do not sum to zero."""
    for usage, entries in batch:
        if not math.isclose(sum(amount for _, amount in entries), 0.0, abs_tol=1e-9):
            raise ValueError(f"ledger entries of request {usage.id} must sum to zero")


def balance_deltas(batch: Sequence[Charge]) -> list[tuple[str, str, float]]:
    """(account, period, amount) to add to the running balances for ``batch``'s entries."""
    sums: dict[tuple[str, str], float] = {}
    for usage, entries in batch:
        for period in periods_of(usage.at):
            for account, amount in entries:
                sums[account, period] = sums.get((account, period), 0.0) + amount
    return [(account, period, amount) for (account, period), amount in sums.items()]


@dataclass(frozen=True)
class UsageSummary:
    group: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    credits: float


class Ledger(Protocol):
    """Every method is one transaction."""

    async def put_api_key(self, record: ApiKeyRecord) -> None: ...

    async def api_key_by_token_hash(self, token_hash: str) -> ApiKeyRecord | None: ...

    async def api_keys(self, user_id: str | None = None) -> list[ApiKeyRecord]: ...

    async def revoke_api_key(self, key_id: str) -> bool: ...

    async def record_usage(self, batch: Sequence[Charge]) -> None:
        """Store requests' usage and ledger entries in one transaction. Each request's entries
        must sum to zero; if any does not, nothing is written."""

    async def balance(self, account: str, period: str = "total") -> float:
        """The account's running balance for ``period`` ('total', 'day:…', 'month:…'): one row."""

    async def usage_summary(self, by: str, since: datetime | None) -> list[UsageSummary]:
        """Totals grouped ``by`` one of: principal, key_id, worker, model."""
