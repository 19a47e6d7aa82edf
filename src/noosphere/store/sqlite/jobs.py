"""SQLite statements for scheduled job runs (the scheduler's lock and history)."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from noosphere.store.contract import (
    JobRunRecord,
)
from noosphere.store.sqlite.base import SQLiteBase
from noosphere.store.sqlite.sql import dt


def _claim(conn: sqlite3.Connection, job: str, tick: str, node: str, at: datetime) -> bool:
    cur = conn.execute(
        "INSERT INTO job_runs (job, tick, node, started_at, outcome) VALUES (?, ?, ?, ?, 'running') "
        "ON CONFLICT (job, tick) DO NOTHING",
        (job, tick, node, at.timestamp()),
    )
    return cur.rowcount == 1


def _finish(
    conn: sqlite3.Connection, job: str, tick: str, outcome: str, detail: str | None, at: datetime
) -> None:
    conn.execute(
        "UPDATE job_runs SET outcome = ?, detail = ?, finished_at = ? WHERE job = ? AND tick = ?",
        (outcome, detail, at.timestamp(), job, tick),
    )


def _runs(conn: sqlite3.Connection, job: str | None, limit: int) -> list[JobRunRecord]:
    rows = conn.execute(
        "SELECT job, tick, node, started_at, finished_at, outcome, detail FROM job_runs "
        "WHERE ? IS NULL OR job = ? ORDER BY started_at DESC, tick DESC LIMIT ?",
        (job, job, limit),
    ).fetchall()
    out = []
    for r in rows:
        started = dt(r["started_at"])
        assert started is not None
        out.append(
            JobRunRecord(
                job=r["job"],
                tick=r["tick"],
                node=r["node"],
                started_at=started,
                outcome=r["outcome"],
                finished_at=dt(r["finished_at"]),
                detail=r["detail"],
            )
        )
    return out


class SQLiteJobRuns(SQLiteBase):
    async def claim_job_run(self, job: str, tick: str, node: str, at: datetime) -> bool:
        return await self._run(lambda conn: _claim(conn, job, tick, node, at))

    async def finish_job_run(
        self, job: str, tick: str, outcome: str, detail: str | None, at: datetime
    ) -> None:
        await self._run(lambda conn: _finish(conn, job, tick, outcome, detail, at))

    async def job_runs(self, job: str | None, limit: int) -> list[JobRunRecord]:
        return await self._run(lambda conn: _runs(conn, job, limit))
