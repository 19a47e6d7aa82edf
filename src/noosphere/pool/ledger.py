"""The credit ledger: every request moves credits from the caller's account (its API key, or the
principal) to the account of the worker that served it, as entries summing to zero. Credits are
the VTC weights: one per prompt token, two per completion token, counted by the gateway."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from noosphere.auth.principal import Principal
from noosphere.ids import unique_hex
from noosphere.pool.budget import TOTAL, period_key
from noosphere.pool.fairness import weighted_tokens
from noosphere.pool.jobs import ChatJob, JobState
from noosphere.pool.tokens import TokenCounter
from noosphere.singleflight import SingleFlight
from noosphere.store.contract import Charge, MemoryStore, UsageRecord, balance_deltas

BALANCE_CACHE_SECONDS = 1.0


class Ledger:
    def __init__(
        self,
        store: MemoryStore,
        counter: TokenCounter,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.counter = counter
        self.clock = clock
        # Per paying account: credits of finished requests not written yet, and credits reserved
        # by requests still running, so concurrent requests can never spend past a budget.
        self._pending: dict[str, float] = {}
        self._reserved: dict[str, float] = {}
        # Written balances as last read, kept current with this process's own writes and read
        # again after BALANCE_CACHE_SECONDS (other processes sharing the store write too).
        self._balances: dict[tuple[str, str], tuple[float, float]] = {}
        self._reads: SingleFlight[tuple[str, str], float] = SingleFlight()  # one read per balance

    def hold(self, principal: Principal, job: ChatJob, prompt: int, completion: int) -> None:
        if job.worker_account is not None:
            _add(self._pending, principal.account, weighted_tokens(prompt, completion))

    def abandon(self, principal: Principal, job: ChatJob) -> None:
        """Give up writing ``job``'s usage: its credits are no longer pending."""
        if job.worker_account is not None:
            _add(self._pending, principal.account, -weighted_tokens(*self.tokens(job)))

    def reserve(self, principal: Principal, credits: float) -> None:
        _add(self._reserved, principal.account, credits)

    def release(self, principal: Principal, credits: float) -> None:
        _add(self._reserved, principal.account, -credits)

    def tokens(self, job: ChatJob) -> tuple[int, int]:
        """(prompt, completion) tokens as the gateway counts them."""
        if job.output_tokens is not None:
            return job.prompt_tokens, job.output_tokens
        counted = self.counter.text("".join(job.output))
        if job.state is JobState.FINISHED:  # the output is final: count it once
            job.output_tokens = counted
        return job.prompt_tokens, counted

    async def record(self, finished: Sequence[tuple[Principal, ChatJob]]) -> list[UsageRecord]:
        """Write finished requests' usage and credit movements, in one transaction. Their credits
        stay pending (counted against budgets) until written, or until ``abandon``."""
        batch: list[Charge] = []
        for principal, job in finished:
            prompt, completion = self.tokens(job)
            served = job.worker_account is not None
            credits = weighted_tokens(prompt, completion) if served else 0.0
            usage = UsageRecord(
                id="req_" + unique_hex(),
                at=datetime.now(UTC),
                principal=principal.id,
                key_id=principal.key.id if principal.key else None,
                model=job.model,
                worker=job.worker_account,
                prompt_tokens=prompt if served else 0,
                completion_tokens=completion,
                reported_prompt=job.reported.prompt_tokens if job.reported else None,
                reported_completion=job.reported.completion_tokens if job.reported else None,
                credits=credits,
                status=job.outcome,
            )
            entries = [(principal.account, -credits), (job.worker_account or "", credits)] if credits else []
            batch.append((usage, entries))
        started = time.monotonic()
        await self.store.record_usage(batch)
        for account, period, amount in balance_deltas(batch):
            cached = self._balances.get((account, period))
            if cached is not None and cached[1] < started:  # read before this write: add it
                self._balances[account, period] = (cached[0] + amount, cached[1])
        for (principal, _), (usage, _) in zip(finished, batch, strict=True):
            if usage.worker is not None:  # written: no longer pending
                _add(self._pending, principal.account, -usage.credits)
        return [usage for usage, _ in batch]

    async def spent(self, principal: Principal) -> float:
        """What the caller has spent in its budget's current period, counting requests finished
        but not written yet: one balance row, O(1)."""
        key = principal.key
        period = period_key(key.budget_period, self.clock()) if key else TOTAL
        written = -await self._balance(principal.account, period)
        return written + self._pending.get(principal.account, 0.0)

    async def _balance(self, account: str, period: str) -> float:
        now = time.monotonic()
        cached = self._balances.get((account, period))
        if cached is not None and now - cached[1] < BALANCE_CACHE_SECONDS:
            return cached[0]
        value = await self._reads.do((account, period), lambda: self.store.balance(account, period))
        if len(self._balances) > 100_000:  # accounts seen long ago: read them again when they return
            self._balances.clear()
        self._balances[account, period] = (value, now)
        return value

    def reserved(self, principal: Principal) -> float:
        """Credits held by the caller's requests still running."""
        return self._reserved.get(principal.account, 0.0)


def _add(totals: dict[str, float], account: str, credits: float) -> None:
    """Add to a running total, dropping it at zero (the maps hold only accounts in flight)."""
    value = totals.get(account, 0.0) + credits
    if abs(value) < 1e-9:
        totals.pop(account, None)
    else:
        totals[account] = value
