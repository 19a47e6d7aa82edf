"""SQLite statements for agent profiles and delegated tasks."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime

from noosphere.store.contract import TaskRecord
from noosphere.store.sqlite_sql import dt

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


def put_profile(conn: sqlite3.Connection, name: str, profile: str, at: datetime) -> None:
    conn.execute(
        "INSERT INTO agent_profiles (name, profile, updated_at) VALUES (?, ?, ?) "
        "ON CONFLICT (name) DO UPDATE SET profile = excluded.profile, updated_at = excluded.updated_at",
        (name, profile, at.timestamp()),
    )


def profiles(conn: sqlite3.Connection, name: str | None) -> list[str]:
    rows = conn.execute(
        "SELECT profile FROM agent_profiles WHERE ? IS NULL OR name = ? ORDER BY name", (name, name)
    ).fetchall()
    return [r["profile"] for r in rows]


def delete_profile(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("DELETE FROM agent_profiles WHERE name = ?", (name,)).rowcount == 1


def put_task(conn: sqlite3.Connection, t: TaskRecord) -> None:
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


def get_task(conn: sqlite3.Connection, task_id: str) -> TaskRecord | None:
    row = conn.execute(f"SELECT {_TASK_COLUMNS} FROM agent_tasks WHERE id = ?", (task_id,)).fetchone()
    return _task(row) if row else None


def tasks(conn: sqlite3.Connection, agent: str | None, limit: int) -> list[TaskRecord]:
    rows = conn.execute(
        f"SELECT {_TASK_COLUMNS} FROM agent_tasks WHERE ? IS NULL OR delegator = ? OR assignee = ? "
        "ORDER BY created_at DESC, id LIMIT ?",
        (agent, agent, agent, limit),
    ).fetchall()
    return [_task(r) for r in rows]


def move_task(
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


def lease_task(conn: sqlite3.Connection, task_id: str, until: datetime) -> bool:
    cur = conn.execute(
        "UPDATE agent_tasks SET lease_until = ? WHERE id = ? AND status = 'accepted'",
        (until.timestamp(), task_id),
    )
    return cur.rowcount == 1


def lapsed_tasks(conn: sqlite3.Connection, now: datetime, limit: int) -> list[TaskRecord]:
    rows = conn.execute(
        f"SELECT {_TASK_COLUMNS} FROM agent_tasks WHERE status = 'accepted' AND lease_until < ? "
        "ORDER BY lease_until LIMIT ?",
        (now.timestamp(), limit),
    ).fetchall()
    return [_task(r) for r in rows]


def reclaim_task(
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
