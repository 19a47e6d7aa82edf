"""PostgreSQL statements for agent profiles and delegated tasks."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from psycopg import AsyncConnection

from noosphere.store.contract import (
    TaskRecord,
)
from noosphere.store.postgres.base import PostgresBase
from noosphere.store.postgres.sql import Row

_TASK_COLUMNS = (
    "id, delegator, assignee, task, status, result, session, created_at, updated_at, lease_until, attempts"
)


async def _put_profile(conn: AsyncConnection[Row], name: str, profile: str, at: datetime) -> None:
    await conn.execute(
        "INSERT INTO agent_profiles (name, profile, updated_at) VALUES (%s, %s, %s) "
        "ON CONFLICT (name) DO UPDATE SET profile = EXCLUDED.profile, updated_at = EXCLUDED.updated_at",
        (name, profile, at),
    )


async def _profiles(conn: AsyncConnection[Row], name: str | None) -> list[str]:
    cur = await conn.execute(
        "SELECT profile FROM agent_profiles WHERE %s::text IS NULL OR name = %s ORDER BY name", (name, name)
    )
    return [r["profile"] for r in await cur.fetchall()]


async def _delete_profile(conn: AsyncConnection[Row], name: str) -> bool:
    cur = await conn.execute("DELETE FROM agent_profiles WHERE name = %s", (name,))
    return cur.rowcount == 1


async def _put_task(conn: AsyncConnection[Row], t: TaskRecord) -> None:
    await conn.execute(
        f"INSERT INTO agent_tasks ({_TASK_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            t.id,
            t.delegator,
            t.assignee,
            t.task,
            t.status,
            t.result,
            t.session,
            t.created_at,
            t.updated_at,
            t.lease_until,
            t.attempts,
        ),
    )


async def _get_task(conn: AsyncConnection[Row], task_id: str) -> TaskRecord | None:
    cur = await conn.execute(f"SELECT {_TASK_COLUMNS} FROM agent_tasks WHERE id = %s", (task_id,))
    row = await cur.fetchone()
    return TaskRecord(**row) if row else None


async def _tasks(conn: AsyncConnection[Row], agent: str | None, limit: int) -> list[TaskRecord]:
    cur = await conn.execute(
        f"SELECT {_TASK_COLUMNS} FROM agent_tasks WHERE %s::text IS NULL OR delegator = %s OR assignee = %s "
        "ORDER BY created_at DESC, id LIMIT %s",
        (agent, agent, agent, limit),
    )
    return [TaskRecord(**r) for r in await cur.fetchall()]


async def _open_tasks(
    conn: AsyncConnection[Row], delegator: str | None, on_peers: bool, limit: int
) -> list[TaskRecord]:
    cur = await conn.execute(
        f"SELECT {_TASK_COLUMNS} FROM agent_tasks WHERE status IN ('delegated', 'accepted') "
        "AND (%s::text IS NULL OR delegator = %s) AND (NOT %s OR strpos(assignee, '@') > 0) "
        "ORDER BY created_at, id LIMIT %s",
        (delegator, delegator, on_peers, limit),
    )
    return [TaskRecord(**r) for r in await cur.fetchall()]


async def _move_task(
    conn: AsyncConnection[Row],
    task_id: str,
    before: Sequence[str],
    status: str,
    result: str | None,
    at: datetime,
) -> bool:
    cur = await conn.execute(
        "UPDATE agent_tasks SET status = %s, result = COALESCE(%s, result), updated_at = %s "
        "WHERE id = %s AND status = ANY(%s)",
        (status, result, at, task_id, list(before)),
    )
    return cur.rowcount == 1


async def _lease_task(conn: AsyncConnection[Row], task_id: str, until: datetime) -> bool:
    cur = await conn.execute(
        "UPDATE agent_tasks SET lease_until = %s WHERE id = %s AND status = 'accepted'", (until, task_id)
    )
    return cur.rowcount == 1


async def _lapsed_tasks(conn: AsyncConnection[Row], now: datetime, limit: int) -> list[TaskRecord]:
    cur = await conn.execute(
        f"SELECT {_TASK_COLUMNS} FROM agent_tasks WHERE status = 'accepted' AND lease_until < %s "
        "ORDER BY lease_until LIMIT %s",
        (now, limit),
    )
    return [TaskRecord(**r) for r in await cur.fetchall()]


async def _reclaim_task(
    conn: AsyncConnection[Row],
    task_id: str,
    lapsed_before: datetime,
    status: str,
    result: str | None,
    at: datetime,
) -> bool:
    cur = await conn.execute(
        "UPDATE agent_tasks SET status = %s, result = COALESCE(%s, result), updated_at = %s, "
        "lease_until = NULL, attempts = attempts + 1 "
        "WHERE id = %s AND status = 'accepted' AND lease_until < %s",
        (status, result, at, task_id, lapsed_before),
    )
    return cur.rowcount == 1


class PostgresAgents(PostgresBase):
    async def put_agent_profile(self, name: str, profile: str, at: datetime) -> None:
        async with self._connection() as conn:
            await _put_profile(conn, name, profile, at)

    async def agent_profiles(self, name: str | None = None) -> list[str]:
        async with self._connection() as conn:
            return await _profiles(conn, name)

    async def delete_agent_profile(self, name: str) -> bool:
        async with self._connection() as conn:
            return await _delete_profile(conn, name)

    async def put_task(self, record: TaskRecord) -> None:
        async with self._connection() as conn:
            await _put_task(conn, record)

    async def task(self, task_id: str) -> TaskRecord | None:
        async with self._connection() as conn:
            return await _get_task(conn, task_id)

    async def tasks(self, agent: str | None, limit: int) -> list[TaskRecord]:
        async with self._connection() as conn:
            return await _tasks(conn, agent, limit)

    async def open_tasks(self, delegator: str | None, limit: int, on_peers: bool = False) -> list[TaskRecord]:
        async with self._connection() as conn:
            return await _open_tasks(conn, delegator, on_peers, limit)

    async def move_task(
        self, task_id: str, before: Sequence[str], status: str, result: str | None, at: datetime
    ) -> bool:
        async with self._connection() as conn:
            return await _move_task(conn, task_id, before, status, result, at)

    async def lease_task(self, task_id: str, until: datetime) -> bool:
        async with self._connection() as conn:
            return await _lease_task(conn, task_id, until)

    async def lapsed_tasks(self, now: datetime, limit: int) -> list[TaskRecord]:
        async with self._connection() as conn:
            return await _lapsed_tasks(conn, now, limit)

    async def reclaim_task(
        self, task_id: str, lapsed_before: datetime, status: str, result: str | None, at: datetime
    ) -> bool:
        async with self._connection() as conn:
            return await _reclaim_task(conn, task_id, lapsed_before, status, result, at)
