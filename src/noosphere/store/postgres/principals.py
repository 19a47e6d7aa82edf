"""Principals and the salts of their conversation keys."""

from __future__ import annotations

from datetime import datetime

from noosphere.store.contract import (
    PrincipalRecord,
)
from noosphere.store.postgres import sql
from noosphere.store.postgres.base import PostgresBase


class PostgresPrincipals(PostgresBase):
    async def forget_principal(self, principal_id: str, mailbox: str) -> int:
        removed = 0
        async with self._connection() as conn, conn.transaction():
            for statement, value in (
                ("DELETE FROM approval_grants WHERE requester = %s", mailbox),
                ("DELETE FROM mailbox WHERE mailbox = %s", mailbox),
                ("DELETE FROM subscriptions WHERE subscriber = %s", mailbox),
                ("UPDATE api_keys SET revoked = true WHERE user_id = %s AND NOT revoked", principal_id),
                ("DELETE FROM conversation_keys WHERE principal_id = %s", principal_id),
            ):
                removed += (await conn.execute(statement, (value,))).rowcount
        return removed

    async def put_principal(self, record: PrincipalRecord) -> None:
        async with self._connection() as conn:
            await conn.execute(
                "INSERT INTO principals (id, kind, name, level, token_hash, key_salt, created_at, disabled, "
                "capture, models) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE "
                "SET kind = excluded.kind, name = excluded.name, level = excluded.level, "
                "token_hash = excluded.token_hash, key_salt = excluded.key_salt, "
                "disabled = excluded.disabled, capture = excluded.capture, models = excluded.models",
                (
                    record.id,
                    record.kind,
                    record.name,
                    record.level,
                    record.token_hash,
                    record.key_salt,
                    record.created_at,
                    record.disabled,
                    record.capture,
                    None if record.models is None else list(record.models),
                ),
            )

    async def _one_principal(self, where: str, value: str) -> PrincipalRecord | None:
        async with self._connection() as conn:
            row = await (
                await conn.execute(f"SELECT * FROM principals WHERE {where} = %s", (value,))
            ).fetchone()
        return None if row is None else sql.principal_of(row)

    async def principal_by_token_hash(self, token_hash: str) -> PrincipalRecord | None:
        return await self._one_principal("token_hash", token_hash)

    async def principal(self, principal_id: str) -> PrincipalRecord | None:
        return await self._one_principal("id", principal_id)

    async def principals(self, kind: str | None = None) -> list[PrincipalRecord]:
        async with self._connection() as conn:
            if kind is None:
                cur = await conn.execute("SELECT * FROM principals ORDER BY id")
            else:
                cur = await conn.execute("SELECT * FROM principals WHERE kind = %s ORDER BY id", (kind,))
            return [sql.principal_of(r) for r in await cur.fetchall()]

    async def delete_principal(self, principal_id: str) -> bool:
        async with self._connection() as conn:
            cur = await conn.execute("DELETE FROM principals WHERE id = %s", (principal_id,))
            return cur.rowcount > 0

    async def conversation_key(self, principal_id: str) -> tuple[bytes, str] | None:
        async with self._connection() as conn:
            cur = await conn.execute(
                "SELECT salt, check_value FROM conversation_keys WHERE principal_id = %s", (principal_id,)
            )
            row = await cur.fetchone()
        return None if row is None else (bytes(row["salt"]), str(row["check_value"]))

    async def put_conversation_key(self, principal_id: str, salt: bytes, check: str, at: datetime) -> bool:
        async with self._connection() as conn:
            cur = await conn.execute(
                "INSERT INTO conversation_keys (principal_id, salt, check_value, created_at) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (principal_id) DO NOTHING",
                (principal_id, salt, check, at),
            )
            return cur.rowcount == 1

    async def delete_conversation_key(self, principal_id: str) -> bool:
        async with self._connection() as conn:
            cur = await conn.execute("DELETE FROM conversation_keys WHERE principal_id = %s", (principal_id,))
            return cur.rowcount == 1
