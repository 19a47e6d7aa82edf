"""Principals and the salts of their conversation keys."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime

from noosphere.store.contract import (
    PrincipalRecord,
)
from noosphere.store.sqlite import sql
from noosphere.store.sqlite.base import SQLiteBase


class SQLitePrincipals(SQLiteBase):
    async def forget_principal(self, principal_id: str, mailbox: str) -> int:
        def op(conn: sqlite3.Connection) -> int:
            def body() -> int:
                return sum(
                    conn.execute(statement, (value,)).rowcount
                    for statement, value in (
                        ("DELETE FROM approval_grants WHERE requester = ?", mailbox),
                        ("DELETE FROM mailbox WHERE mailbox = ?", mailbox),
                        ("DELETE FROM subscriptions WHERE subscriber = ?", mailbox),
                        ("UPDATE api_keys SET revoked = 1 WHERE user_id = ? AND revoked = 0", principal_id),
                        ("DELETE FROM conversation_keys WHERE principal_id = ?", principal_id),
                    )
                )

            return self._transaction(conn, body)

        return await self._run(op)

    async def put_principal(self, record: PrincipalRecord) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO principals (id, kind, name, level, token_hash, key_salt, "
                "created_at, disabled, capture, models) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.id,
                    record.kind,
                    record.name,
                    record.level,
                    record.token_hash,
                    record.key_salt,
                    record.created_at.timestamp(),
                    int(record.disabled),
                    int(record.capture),
                    None if record.models is None else json.dumps(list(record.models)),
                ),
            )

        await self._run(op)

    async def principal_by_token_hash(self, token_hash: str) -> PrincipalRecord | None:
        def op(conn: sqlite3.Connection) -> PrincipalRecord | None:
            row = conn.execute("SELECT * FROM principals WHERE token_hash = ?", (token_hash,)).fetchone()
            return None if row is None else sql.principal_of(row)

        return await self._run(op)

    async def principal(self, principal_id: str) -> PrincipalRecord | None:
        def op(conn: sqlite3.Connection) -> PrincipalRecord | None:
            row = conn.execute("SELECT * FROM principals WHERE id = ?", (principal_id,)).fetchone()
            return None if row is None else sql.principal_of(row)

        return await self._run(op)

    async def principals(self, kind: str | None = None) -> list[PrincipalRecord]:
        def op(conn: sqlite3.Connection) -> list[PrincipalRecord]:
            if kind is None:
                rows = conn.execute("SELECT * FROM principals ORDER BY id").fetchall()
            else:
                rows = conn.execute("SELECT * FROM principals WHERE kind = ? ORDER BY id", (kind,)).fetchall()
            return [sql.principal_of(r) for r in rows]

        return await self._run(op)

    async def delete_principal(self, principal_id: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            return conn.execute("DELETE FROM principals WHERE id = ?", (principal_id,)).rowcount > 0

        return await self._run(op)

    async def conversation_key(self, principal_id: str) -> tuple[bytes, str] | None:
        def op(conn: sqlite3.Connection) -> tuple[bytes, str] | None:
            row = conn.execute(
                "SELECT salt, check_value FROM conversation_keys WHERE principal_id = ?", (principal_id,)
            ).fetchone()
            return None if row is None else (bytes(row[0]), str(row[1]))

        return await self._run(op)

    async def put_conversation_key(self, principal_id: str, salt: bytes, check: str, at: datetime) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "INSERT OR IGNORE INTO conversation_keys (principal_id, salt, check_value, created_at) "
                "VALUES (?, ?, ?, ?)",
                (principal_id, salt, check, at.timestamp()),
            )
            return cur.rowcount == 1

        return await self._run(op)

    async def delete_conversation_key(self, principal_id: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            cur = conn.execute("DELETE FROM conversation_keys WHERE principal_id = ?", (principal_id,))
            return cur.rowcount == 1

        return await self._run(op)
