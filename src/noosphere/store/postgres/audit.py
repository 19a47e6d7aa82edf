"""PostgreSQL statements for the audit log and its signed tree heads."""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import AsyncConnection

from noosphere.store.contract import (
    AuditEntry,
    TreeHead,
)
from noosphere.store.postgres.base import PostgresBase
from noosphere.store.postgres.sql import Row


async def _append(conn: AsyncConnection[Row], entries: Sequence[tuple[str, bytes]]) -> int:
    async with conn.transaction():
        # One appender at a time, across every node process sharing the database.
        await conn.execute("LOCK TABLE audit_log IN EXCLUSIVE MODE")
        cur = await conn.execute("SELECT coalesce(max(seq), -1) + 1 AS next FROM audit_log")
        row = await cur.fetchone()
        assert row is not None
        first = int(row["next"])
        async with conn.cursor() as insert:
            await insert.executemany(
                "INSERT INTO audit_log (seq, entry, leaf) VALUES (%s, %s, %s)",
                [(first + i, entry, leaf) for i, (entry, leaf) in enumerate(entries)],
            )
    return first


async def _entries(conn: AsyncConnection[Row], start: int, limit: int | None) -> list[AuditEntry]:
    cur = await conn.execute(
        "SELECT seq, entry, leaf FROM audit_log WHERE seq >= %s ORDER BY seq LIMIT %s", (start, limit)
    )
    return [AuditEntry(seq=r["seq"], entry=r["entry"], leaf=bytes(r["leaf"])) for r in await cur.fetchall()]


async def _put_head(conn: AsyncConnection[Row], head: TreeHead) -> None:
    await conn.execute(
        "INSERT INTO audit_heads (size, root, at, signature) VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (head.size, head.root, head.at, head.signature),
    )


async def _heads(conn: AsyncConnection[Row]) -> list[TreeHead]:
    cur = await conn.execute("SELECT size, root, at, signature FROM audit_heads ORDER BY size")
    return [
        TreeHead(size=r["size"], root=bytes(r["root"]), at=r["at"], signature=bytes(r["signature"]))
        for r in await cur.fetchall()
    ]


class PostgresAudit(PostgresBase):
    async def append_audit(self, entries: Sequence[tuple[str, bytes]]) -> int:
        async with self._connection() as conn:
            return await _append(conn, entries)

    async def audit_entries(self, start: int = 0, limit: int | None = None) -> list[AuditEntry]:
        async with self._connection() as conn:
            return await _entries(conn, start, limit)

    async def put_tree_head(self, head: TreeHead) -> None:
        async with self._connection() as conn:
            await _put_head(conn, head)

    async def tree_heads(self) -> list[TreeHead]:
        async with self._connection() as conn:
            return await _heads(conn)
