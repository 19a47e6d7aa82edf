"""SQLite statements for human checkpoints: approvals and standing grants."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from noosphere.store.contract import (
    ApprovalRecord,
)
from noosphere.store.sqlite.base import SQLiteBase
from noosphere.store.sqlite.sql import dt, ts

_COLUMNS = (
    "id, requester, level, tool, subject, args_digest, impact, reason, session, status, created_at, "
    "expires_at, decided_by, decided_at, scope, note, escalated_from, used_at, args"
)


def _record(r: sqlite3.Row) -> ApprovalRecord:
    created, expires = dt(r["created_at"]), dt(r["expires_at"])
    assert created is not None and expires is not None
    return ApprovalRecord(
        id=r["id"],
        requester=r["requester"],
        level=r["level"],
        tool=r["tool"],
        subject=r["subject"],
        args_digest=r["args_digest"],
        impact=r["impact"],
        reason=r["reason"],
        session=r["session"],
        status=r["status"],
        created_at=created,
        expires_at=expires,
        decided_by=r["decided_by"],
        decided_at=dt(r["decided_at"]),
        scope=r["scope"],
        note=r["note"],
        escalated_from=r["escalated_from"],
        used_at=dt(r["used_at"]),
        args=r["args"],
    )


def _put(conn: sqlite3.Connection, a: ApprovalRecord) -> None:
    conn.execute(
        f"INSERT OR REPLACE INTO approvals ({_COLUMNS}) VALUES ({', '.join('?' * 19)})",
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
            a.created_at.timestamp(),
            a.expires_at.timestamp(),
            a.decided_by,
            ts(a.decided_at),
            a.scope,
            a.note,
            a.escalated_from,
            ts(a.used_at),
            a.args,
        ),
    )


def _get(conn: sqlite3.Connection, approval_id: str) -> ApprovalRecord | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM approvals WHERE id = ?", (approval_id,)).fetchone()
    return _record(row) if row else None


def _listing(conn: sqlite3.Connection, status: str | None, limit: int) -> list[ApprovalRecord]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM approvals WHERE ? IS NULL OR status = ? "
        "ORDER BY created_at DESC, id LIMIT ?",
        (status, status, limit),
    ).fetchall()
    return [_record(r) for r in rows]


def _settle(
    conn: sqlite3.Connection,
    approval_id: str,
    status: str,
    by: str,
    at: datetime,
    scope: str | None,
    note: str | None,
) -> bool:
    cur = conn.execute(
        "UPDATE approvals SET status = ?, decided_by = ?, decided_at = ?, scope = ?, note = ? "
        "WHERE id = ? AND status = 'pending'",
        (status, by, at.timestamp(), scope, note, approval_id),
    )
    return cur.rowcount == 1


def _due(conn: sqlite3.Connection, now: datetime) -> list[ApprovalRecord]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM approvals WHERE status = 'pending' AND expires_at <= ? ORDER BY expires_at",
        (now.timestamp(),),
    ).fetchall()
    return [_record(r) for r in rows]


def _open_for(conn: sqlite3.Connection, requester: str, tool: str, digest: str) -> ApprovalRecord | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM approvals WHERE requester = ? AND tool = ? AND args_digest = ? "
        "AND used_at IS NULL AND status <> 'escalated' ORDER BY created_at DESC, id DESC LIMIT 1",
        (requester, tool, digest),
    ).fetchone()
    return _record(row) if row else None


def _use(conn: sqlite3.Connection, approval_id: str, at: datetime) -> bool:
    cur = conn.execute(
        "UPDATE approvals SET used_at = ? WHERE id = ? AND used_at IS NULL AND status <> 'pending'",
        (at.timestamp(), approval_id),
    )
    return cur.rowcount == 1


def _put_grant(
    conn: sqlite3.Connection,
    requester: str,
    tool: str,
    subject: str | None,
    session: str | None,
    by: str,
    at: datetime,
) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO approval_grants (requester, tool, subject, session, granted_by, granted_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (requester, tool, subject or "", session or "", by, at.timestamp()),
    )


def _has_grant(
    conn: sqlite3.Connection, requester: str, tool: str, subject: str | None, session: str | None
) -> bool:
    row = conn.execute(
        "SELECT 1 FROM approval_grants WHERE requester = ? AND tool = ? AND subject = ? "
        "AND (session = '' OR session = ?) LIMIT 1",
        (requester, tool, subject or "", session or ""),
    ).fetchone()
    return row is not None


class SQLiteApprovals(SQLiteBase):
    async def put_approval(self, record: ApprovalRecord) -> None:
        await self._run(lambda conn: _put(conn, record))

    async def approval(self, approval_id: str) -> ApprovalRecord | None:
        return await self._run(lambda conn: _get(conn, approval_id))

    async def approvals(self, status: str | None, limit: int) -> list[ApprovalRecord]:
        return await self._run(lambda conn: _listing(conn, status, limit))

    async def settle_approval(
        self, approval_id: str, status: str, by: str, at: datetime, scope: str | None, note: str | None
    ) -> bool:
        return await self._run(lambda conn: _settle(conn, approval_id, status, by, at, scope, note))

    async def due_approvals(self, now: datetime) -> list[ApprovalRecord]:
        return await self._run(lambda conn: _due(conn, now))

    async def open_approval(self, requester: str, tool: str, args_digest: str) -> ApprovalRecord | None:
        return await self._run(lambda conn: _open_for(conn, requester, tool, args_digest))

    async def use_approval(self, approval_id: str, at: datetime) -> bool:
        return await self._run(lambda conn: _use(conn, approval_id, at))

    async def put_grant(
        self, requester: str, tool: str, subject: str | None, session: str | None, by: str, at: datetime
    ) -> None:
        await self._run(lambda conn: _put_grant(conn, requester, tool, subject, session, by, at))

    async def has_grant(self, requester: str, tool: str, subject: str | None, session: str | None) -> bool:
        return await self._run(lambda conn: _has_grant(conn, requester, tool, subject, session))
