"""SQLite statements for the audit log and its signed tree heads."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime

from noosphere.store.contract import (
    AuditEntry,
    TreeHead,
)
from noosphere.store.sqlite.base import SQLiteBase


def _append(conn: sqlite3.Connection, entries: Sequence[tuple[str, bytes]]) -> int:
    # Called inside BEGIN IMMEDIATE: no other writer can take the same seq.
    first = int(conn.execute("SELECT coalesce(max(seq), -1) + 1 FROM audit_log").fetchone()[0])
    conn.executemany(
        "INSERT INTO audit_log (seq, entry, leaf) VALUES (?, ?, ?)",
        [(first + i, entry, leaf) for i, (entry, leaf) in enumerate(entries)],
    )
    return first


def _entries(conn: sqlite3.Connection, start: int, limit: int | None) -> list[AuditEntry]:
    rows = conn.execute(
        "SELECT seq, entry, leaf FROM audit_log WHERE seq >= ? ORDER BY seq LIMIT ?",
        (start, -1 if limit is None else limit),
    ).fetchall()
    return [AuditEntry(seq=r["seq"], entry=r["entry"], leaf=bytes(r["leaf"])) for r in rows]


def _put_head(conn: sqlite3.Connection, head: TreeHead) -> None:
    conn.execute(
        "INSERT INTO audit_heads (size, root, at, signature) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (head.size, head.root, head.at.timestamp(), head.signature),
    )


def _heads(conn: sqlite3.Connection) -> list[TreeHead]:
    rows = conn.execute("SELECT size, root, at, signature FROM audit_heads ORDER BY size").fetchall()
    return [
        TreeHead(
            size=r["size"],
            root=bytes(r["root"]),
            at=datetime.fromtimestamp(r["at"], UTC),
            signature=bytes(r["signature"]),
        )
        for r in rows
    ]


class SQLiteAudit(SQLiteBase):
    async def append_audit(self, entries: Sequence[tuple[str, bytes]]) -> int:
        return await self._run(lambda conn: self._transaction(conn, lambda: _append(conn, entries)))

    async def audit_entries(self, start: int = 0, limit: int | None = None) -> list[AuditEntry]:
        return await self._run(lambda conn: _entries(conn, start, limit))

    async def put_tree_head(self, head: TreeHead) -> None:
        await self._run(lambda conn: self._transaction(conn, lambda: _put_head(conn, head)))

    async def tree_heads(self) -> list[TreeHead]:
        return await self._run(_heads)
