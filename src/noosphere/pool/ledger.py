"""The credit ledger: every request moves credits from the caller's account (its API key, or the
principal) to the account of the worker that served it, as entries summing to zero. Credits are
the VTC weights: one per prompt token, two per completion token, counted by the gateway.

Requests in flight hold credits (``credits.py``) so that concurrent ones never spend past a
budget; in a cluster, those of keys with a budget are held in the shared store (``shared``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from noosphere.auth.principal import Principal
from noosphere.ids import unique_hex
from noosphere.pool.budget import TOTAL, period_key
from noosphere.pool.credits import Credits, Decide, LocalCredits
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
        self.local = LocalCredits()
        self.shared: Credits | None = None  # a cluster's holds, for keys with a budget
        # Written balances as last read, kept current with this process's own writes and read
        # again after BALANCE_CACHE_SECONDS (other processes sharing the store write too).
        self._balances: dict[tuple[str, str], tuple[float, float]] = {}
        self._reads: SingleFlight[tuple[str, str], float] = SingleFlight()  # one read per balance

    def credits(self, principal: Principal) -> Credits:
        """Where the caller's holds live: shared across a cluster for a key with a budget."""
        key = principal.key
        if self.shared is not None and key is not None and key.budget is not None:
            return self.shared
        return self.local

    def period(self, principal: Principal) -> str:
        """The balance row the caller's budget is checked against now."""
        key = principal.key
        return period_key(key.budget_period, self.clock()) if key else TOTAL

    async def reserve(self, principal: Principal, decide: Decide) -> float:
        """Reserve ``decide(spent, holds)`` credits for a request of the caller (``spent``: its
        written usage this budget period), atomically with reading what it decides on."""
        account, period = principal.account, self.period(principal)
        return await self.credits(principal).reserve(
            account, period, lambda: self._written(account, period), decide
        )

    async def settle(self, principal: Principal, job: ChatJob, reserved: float) -> None:
        """``job`` ended: its reservation gives way to its cost, pending until written."""
        await self.credits(principal).settle(principal.account, reserved, self.cost(job))

    async def release(self, principal: Principal, reserved: float) -> None:
        """A request that never ran gives its reservation back."""
        await self.credits(principal).settle(principal.account, reserved, 0.0)

    def abandon(self, principal: Principal, job: ChatJob) -> None:
        """Give up writing ``job``'s usage: its credits are no longer pending."""
        if job.worker_account is not None:
            self.credits(principal).written(principal.account, self.cost(job))

    def cost(self, job: ChatJob) -> float:
        """The credits ``job`` costs: its weighted tokens as the gateway counts them, never more
        than it reserved (a worker stops at ``max_tokens`` as its own tokenizer counts, which may
        count fewer tokens than the gateway's); nothing if no worker served it."""
        if job.worker_account is None:
            return 0.0
        return min(weighted_tokens(*self.tokens(job)), job.max_credits)

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
            credits = self.cost(job)
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
                self.credits(principal).written(principal.account, usage.credits)
        return [usage for usage, _ in batch]

    async def spent(self, principal: Principal) -> float:
        """What the caller has spent in its budget's current period, counting requests finished
        but not written yet: one balance row, O(1)."""
        account = principal.account
        written = await self._written(account, self.period(principal))
        return written + (await self.credits(principal).holds(account)).pending

    async def _written(self, account: str, period: str) -> float:
        return -await self._balance(account, period)

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
