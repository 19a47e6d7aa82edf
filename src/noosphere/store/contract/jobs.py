"""Runs of scheduled jobs: the lock that makes a tick run once, and their history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class JobRunRecord:
    """One run of a scheduled job; (job, tick) is unique, which is what makes a tick run once."""

    job: str
    tick: str  # the cron time (ISO 8601), or "msg:<id>" of the message that triggered it
    node: str
    started_at: datetime
    outcome: str  # running | ok | failed | denied | cancelled
    finished_at: datetime | None = None
    detail: str | None = None


class JobRuns(Protocol):
    """Every method is one transaction."""

    async def claim_job_run(self, job: str, tick: str, node: str, at: datetime) -> bool:
        """Record that ``node`` runs ``job`` for ``tick``; False when the tick was claimed before
        (by this node or another sharing the store)."""

    async def finish_job_run(
        self, job: str, tick: str, outcome: str, detail: str | None, at: datetime
    ) -> None: ...

    async def job_runs(self, job: str | None, limit: int) -> list[JobRunRecord]:
        """Newest first; only ``job``'s when given."""
