"""PostgreSQL statements for human checkpoints: approvals and standing grants."""

from __future__ import annotations

from datetime import datetime

from psycopg import AsyncConnection

from noosphere.store.contract import (
    ApprovalRecord,
)
from noosphere.store.postgres.base import PostgresBase
from noosphere.store.postgres.sql import Row

_COLUMNS = (
    "id, requester, level, tool, subject, args_digest, impact, reason, session, status, created_at, "
    "expires_at, decided_by, decided_at, scope, note, escalated_from, used_at, args"
)


def _record(r: Row) -> ApprovalRecord:
    return ApprovalRecord(**r)


async def _put(conn: AsyncConnection[Row], a: ApprovalRecord) -> None:
    await conn.execute(
        f"INSERT INTO approvals ({_COLUMNS}) VALUES "
        "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, decided_by = EXCLUDED.decided_by, "
        "decided_at = EXCLUDED.decided_at, scope = EXCLUDED.scope, note = EXCLUDED.note, "
        "expires_at = EXCLUDED.expires_at, used_at = EXCLUDED.used_at",
        (
            a.id,
            a.requester,
            a.level,
            a.tool,
            a.subject,
            a.args_digest,
            a.impact,
            a.reason,
            a.session,
            a.status,
            a.created_at,
            a.expires_at,
            a.decided_by,
            a.decided_at,
            a.scope,
            a.note,
            a.escalated_from,
            a.used_at,
            a.args,
        ),
    )


async def _get(conn: AsyncConnection[Row], approval_id: str) -> ApprovalRecord | None:
    cur = await conn.execute(f"SELECT {_COLUMNS} FROM approvals WHERE id = %s", (approval_id,))
    row = await cur.fetchone()
    return _record(row) if row else None


async def _listing(conn: AsyncConnection[Row], status: str | None, limit: int) -> list[ApprovalRecord]:
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM approvals WHERE %s::text IS NULL OR status = %s "
        "ORDER BY created_at DESC, id LIMIT %s",
        (status, status, limit),
    )
    return [_record(r) for r in await cur.fetchall()]


async def _settle(
    conn: AsyncConnection[Row],
    approval_id: str,
    status: str,
    by: str,
    at: datetime,
    scope: str | None,
    note: str | None,
) -> bool:
    cur = await conn.execute(
        "UPDATE approvals SET status = %s, decided_by = %s, decided_at = %s, scope = %s, note = %s "
        "WHERE id = %s AND status = 'pending'",
        (status, by, at, scope, note, approval_id),
    )
    return cur.rowcount == 1


async def _due(conn: AsyncConnection[Row], now: datetime) -> list[ApprovalRecord]:
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM approvals WHERE status = 'pending' AND expires_at <= %s ORDER BY expires_at",
        (now,),
    )
    return [_record(r) for r in await cur.fetchall()]


async def _open_for(
    conn: AsyncConnection[Row], requester: str, tool: str, digest: str
) -> ApprovalRecord | None:
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM approvals WHERE requester = %s AND tool = %s AND args_digest = %s "
        "AND used_at IS NULL AND status <> 'escalated' ORDER BY created_at DESC, id DESC LIMIT 1",
        (requester, tool, digest),
    )
    row = await cur.fetchone()
    return _record(row) if row else None


async def _use(conn: AsyncConnection[Row], approval_id: str, at: datetime) -> bool:
    cur = await conn.execute(
        "UPDATE approvals SET used_at = %s WHERE id = %s AND used_at IS NULL AND status <> 'pending'",
        (at, approval_id),
    )
    return cur.rowcount == 1


async def _put_grant(
    conn: AsyncConnection[Row],
    requester: str,
    tool: str,
    subject: str | None,
    session: str | None,
    by: str,
    at: datetime,
) -> None:
    await conn.execute(
        "INSERT INTO approval_grants (requester, tool, subject, session, granted_by, granted_at) "
        "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (requester, tool, subject or "", session or "", by, at),
    )


async def _has_grant(
    conn: AsyncConnection[Row], requester: str, tool: str, subject: str | None, session: str | None
) -> bool:
    cur = await conn.execute(
        "SELECT 1 FROM approval_grants WHERE requester = %s AND tool = %s AND subject = %s "
        "AND (session = '' OR session = %s) LIMIT 1",
        (requester, tool, subject or "", session or ""),
    )
    return await cur.fetchone() is not None


class PostgresApprovals(PostgresBase):
    async def put_approval(self, record: ApprovalRecord) -> None:
        async with self._connection() as conn:
            await _put(conn, record)

    async def approval(self, approval_id: str) -> ApprovalRecord | None:
        async with self._connection() as conn:
            return await _get(conn, approval_id)

    async def approvals(self, status: str | None, limit: int) -> list[ApprovalRecord]:
        async with self._connection() as conn:
            return await _listing(conn, status, limit)

    async def settle_approval(
        self, approval_id: str, status: str, by: str, at: datetime, scope: str | None, note: str | None
    ) -> bool:
        async with self._connection() as conn:
            return await _settle(conn, approval_id, status, by, at, scope, note)

    async def due_approvals(self, now: datetime) -> list[ApprovalRecord]:
        async with self._connection() as conn:
            return await _due(conn, now)

    async def open_approval(self, requester: str, tool: str, args_digest: str) -> ApprovalRecord | None:
        async with self._connection() as conn:
            return await _open_for(conn, requester, tool, args_digest)

    async def use_approval(self, approval_id: str, at: datetime) -> bool:
        async with self._connection() as conn:
            return await _use(conn, approval_id, at)

    async def put_grant(
        self, requester: str, tool: str, subject: str | None, session: str | None, by: str, at: datetime
    ) -> None:
        async with self._connection() as conn:
            await _put_grant(conn, requester, tool, subject, session, by, at)

    async def has_grant(self, requester: str, tool: str, subject: str | None, session: str | None) -> bool:
        async with self._connection() as conn:
            return await _has_grant(conn, requester, tool, subject, session)
