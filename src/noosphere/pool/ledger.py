"""The credit ledger: every request moves credits from the caller's account (its API key, or the
principal) to the account of the worker that served it, as entries summing to zero. Credits are
the VTC weights: one per prompt token, two per completion token, counted by the gateway."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from noosphere.auth.principal import Principal
from noosphere.pool.fairness import weighted_tokens
from noosphere.pool.jobs import ChatJob
from noosphere.pool.tokens import TokenCounter
from noosphere.store.contract import MemoryStore, UsageRecord, UsageSummary


class Ledger:
    def __init__(self, store: MemoryStore, counter: TokenCounter) -> None:
        self.store = store
        self.counter = counter
        # Credits of requests that finished but are not written yet, per paying account, so
        # budgets stay exact while the writer catches up.
        self._pending: dict[str, float] = {}

    def hold(self, principal: Principal, job: ChatJob, prompt: int, completion: int) -> None:
        if job.worker_account is not None:
            account = principal.account
            self._pending[account] = self._pending.get(account, 0.0) + weighted_tokens(prompt, completion)

    def tokens(self, job: ChatJob) -> tuple[int, int]:
        """(prompt, completion) tokens as the gateway counts them."""
        return job.prompt_tokens, self.counter.text("".join(job.output))

    async def record(self, principal: Principal, job: ChatJob) -> UsageRecord:
        prompt, completion = self.tokens(job)
        served = job.worker_account is not None
        credits = weighted_tokens(prompt, completion) if served else 0.0
        usage = UsageRecord(
            id="req_" + uuid.uuid4().hex,
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
        try:
            await self.store.record_usage(usage, entries)
        finally:
            if served:
                self._pending[principal.account] = self._pending.get(principal.account, 0.0) - credits
        return usage

    async def spent(self, principal: Principal) -> float:
        return -await self.store.balance(principal.account) + self._pending.get(principal.account, 0.0)

    async def summary(self, by: str, since: datetime | None = None) -> list[UsageSummary]:
        return await self.store.usage_summary(by, since)
