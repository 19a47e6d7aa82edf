"""SQLite statements for agent profiles and delegated tasks."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime

from noosphere.store.contract import (
    TaskRecord,
)
from noosphere.store.sqlite.base import SQLiteBase
from noosphere.store.sqlite.sql import dt

_TASK_COLUMNS = (
    "id, delegator, assignee, task, status, result, session, created_at, updated_at, lease_until, attempts"
)


def _task(r: sqlite3.Row) -> TaskRecord:
    created, updated = dt(r["created_at"]), dt(r["updated_at"])
    assert created is not None and updated is not None
    return TaskRecord(
        id=r["id"],
        delegator=r["delegator"],
        assignee=r["assignee"],
        task=r["task"],
        status=r["status"],
        result=r["result"],
        session=r["session"],
        created_at=created,
        updated_at=updated,
        lease_until=dt(r["lease_until"]),
        attempts=r["attempts"],
    )


def _put_profile(conn: sqlite3.Connection, name: str, profile: str, at: datetime) -> None:
    conn.execute(
        "INSERT INTO agent_profiles (name, profile, updated_at) VALUES (?, ?, ?) "
        "ON CONFLICT (name) DO UPDATE SET profile = excluded.profile, updated_at = excluded.updated_at",
        (name, profile, at.timestamp()),
    )


def _profiles(conn: sqlite3.Connection, name: str | None) -> list[str]:
    rows = conn.execute(
        "SELECT profile FROM agent_profiles WHERE ? IS NULL OR name = ? ORDER BY name", (name, name)
    ).fetchall()
    return [r["profile"] for r in rows]


def _delete_profile(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("DELETE FROM agent_profiles WHERE name = ?", (name,)).rowcount == 1


def _put_task(conn: sqlite3.Connection, t: TaskRecord) -> None:
    conn.execute(
        f"INSERT INTO agent_tasks ({_TASK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            t.id,
            t.delegator,
            t.assignee,
            t.task,
            t.status,
            t.result,
            t.session,
            t.created_at.timestamp(),
            t.updated_at.timestamp(),
            None if t.lease_until is None else t.lease_until.timestamp(),
            t.attempts,
        ),
    )


def _get_task(conn: sqlite3.Connection, task_id: str) -> TaskRecord | None:
    row = conn.execute(f"SELECT {_TASK_COLUMNS} FROM agent_tasks WHERE id = ?", (task_id,)).fetchone()
    return _task(row) if row else None


def _tasks(conn: sqlite3.Connection, agent: str | None, limit: int) -> list[TaskRecord]:
    rows = conn.execute(
        f"SELECT {_TASK_COLUMNS} FROM agent_tasks WHERE ? IS NULL OR delegator = ? OR assignee = ? "
        "ORDER BY created_at DESC, id LIMIT ?",
        (agent, agent, agent, limit),
    ).fetchall()
    return [_task(r) for r in rows]


def _open_tasks(
    conn: sqlite3.Connection, delegator: str | None, on_peers: bool, limit: int
) -> list[TaskRecord]:
    rows = conn.execute(
        f"SELECT {_TASK_COLUMNS} FROM agent_tasks WHERE status IN ('delegated', 'accepted') "
        "AND (? IS NULL OR delegator = ?) AND (NOT ? OR instr(assignee, '@') > 0) "
        "ORDER BY created_at, id LIMIT ?",
        (delegator, delegator, on_peers, limit),
    ).fetchall()
    return [_task(r) for r in rows]


def _move_task(
    conn: sqlite3.Connection,
    task_id: str,
    before: Sequence[str],
    status: str,
    result: str | None,
    at: datetime,
) -> bool:
    marks = ", ".join("?" * len(before))
    cur = conn.execute(
        f"UPDATE agent_tasks SET status = ?, result = COALESCE(?, result), updated_at = ? "
        f"WHERE id = ? AND status IN ({marks})",
        (status, result, at.timestamp(), task_id, *before),
    )
    return cur.rowcount == 1


def _lease_task(conn: sqlite3.Connection, task_id: str, until: datetime) -> bool:
    cur = conn.execute(
        "UPDATE agent_tasks SET lease_until = ? WHERE id = ? AND status = 'accepted'",
        (until.timestamp(), task_id),
    )
    return cur.rowcount == 1


def _lapsed_tasks(conn: sqlite3.Connection, now: datetime, limit: int) -> list[TaskRecord]:
    rows = conn.execute(
        f"SELECT {_TASK_COLUMNS} FROM agent_tasks WHERE status = 'accepted' AND lease_until < ? "
        "ORDER BY lease_until LIMIT ?",
        (now.timestamp(), limit),
    ).fetchall()
    return [_task(r) for r in rows]


def _reclaim_task(
    conn: sqlite3.Connection,
    task_id: str,
    lapsed_before: datetime,
    status: str,
    result: str | None,
    at: datetime,
) -> bool:
    cur = conn.execute(
        "UPDATE agent_tasks SET status = ?, result = COALESCE(?, result), updated_at = ?, "
        "lease_until = NULL, attempts = attempts + 1 "
        "WHERE id = ? AND status = 'accepted' AND lease_until < ?",
        (status, result, at.timestamp(), task_id, lapsed_before.timestamp()),
    )
    return cur.rowcount == 1


class SQLiteAgents(SQLiteBase):
    async def put_agent_profile(self, name: str, profile: str, at: datetime) -> None:
        await self._run(lambda conn: _put_profile(conn, name, profile, at))

    async def agent_profiles(self, name: str | None = None) -> list[str]:
        return await self._run(lambda conn: _profiles(conn, name))

    async def delete_agent_profile(self, name: str) -> bool:
        return await self._run(lambda conn: _delete_profile(conn, name))

    async def put_task(self, record: TaskRecord) -> None:
        await self._run(lambda conn: _put_task(conn, record))

    async def task(self, task_id: str) -> TaskRecord | None:
        return await self._run(lambda conn: _get_task(conn, task_id))

    async def tasks(self, agent: str | None, limit: int) -> list[TaskRecord]:
        return await self._run(lambda conn: _tasks(conn, agent, limit))

    async def open_tasks(self, delegator: str | None, limit: int, on_peers: bool = False) -> list[TaskRecord]:
        return await self._run(lambda conn: _open_tasks(conn, delegator, on_peers, limit))

    async def move_task(
        self, task_id: str, before: Sequence[str], status: str, result: str | None, at: datetime
    ) -> bool:
        return await self._run(lambda conn: _move_task(conn, task_id, before, status, result, at))

    async def lease_task(self, task_id: str, until: datetime) -> bool:
        return await self._run(lambda conn: _lease_task(conn, task_id, until))

    async def lapsed_tasks(self, now: datetime, limit: int) -> list[TaskRecord]:
        return await self._run(lambda conn: _lapsed_tasks(conn, now, limit))

    async def reclaim_task(
        self, task_id: str, lapsed_before: datetime, status: str, result: str | None, at: datetime
    ) -> bool:
        return await self._run(lambda conn: _reclaim_task(conn, task_id, lapsed_before, status, result, at))
