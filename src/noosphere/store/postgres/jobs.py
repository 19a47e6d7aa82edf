"""PostgreSQL statements for scheduled job runs (the scheduler's lock and history)."""

from __future__ import annotations

from datetime import datetime

from psycopg import AsyncConnection

from noosphere.store.contract import (
    JobRunRecord,
)
from noosphere.store.postgres.base import PostgresBase
from noosphere.store.postgres.sql import Row


async def _claim(conn: AsyncConnection[Row], job: str, tick: str, node: str, at: datetime) -> bool:
    cur = await conn.execute(
        "INSERT INTO job_runs (job, tick, node, started_at, outcome) VALUES (%s, %s, %s, %s, 'running') "
        "ON CONFLICT (job, tick) DO NOTHING",
        (job, tick, node, at),
    )
    return cur.rowcount == 1


async def _finish(
    conn: AsyncConnection[Row], job: str, tick: str, outcome: str, detail: str | None, at: datetime
) -> None:
    await conn.execute(
        "UPDATE job_runs SET outcome = %s, detail = %s, finished_at = %s WHERE job = %s AND tick = %s",
        (outcome, detail, at, job, tick),
    )


async def _runs(conn: AsyncConnection[Row], job: str | None, limit: int) -> list[JobRunRecord]:
    cur = await conn.execute(
        "SELECT job, tick, node, started_at, finished_at, outcome, detail FROM job_runs "
        "WHERE %s::text IS NULL OR job = %s ORDER BY started_at DESC, tick DESC LIMIT %s",
        (job, job, limit),
    )
    return [JobRunRecord(**r) for r in await cur.fetchall()]


class PostgresJobRuns(PostgresBase):
    async def claim_job_run(self, job: str, tick: str, node: str, at: datetime) -> bool:
        async with self._connection() as conn:
            return await _claim(conn, job, tick, node, at)

    async def finish_job_run(
        self, job: str, tick: str, outcome: str, detail: str | None, at: datetime
    ) -> None:
        async with self._connection() as conn:
            await _finish(conn, job, tick, outcome, detail, at)

    async def job_runs(self, job: str | None, limit: int) -> list[JobRunRecord]:
        async with self._connection() as conn:
            return await _runs(conn, job, limit)
