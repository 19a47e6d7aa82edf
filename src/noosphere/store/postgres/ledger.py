"""PostgreSQL statements for API keys, usage records and the credit ledger."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from psycopg import AsyncConnection

from noosphere.errors import InvalidRequest
from noosphere.store.contract import (
    USAGE_COLUMNS,
    ApiKeyRecord,
    Charge,
    UsageSummary,
    balance_deltas,
    check_balanced,
)
from noosphere.store.postgres.base import PostgresBase
from noosphere.store.postgres.sql import Row

GROUPS = {"principal", "key_id", "worker", "model"}


def _key(row: Row) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=row["id"],
        user_id=row["user_id"],
        name=row["name"],
        token_hash=row["token_hash"],
        key_salt=bytes(row["key_salt"]),
        rpm=row["rpm"],
        tpm=row["tpm"],
        budget=row["budget"],
        created_at=row["created_at"],
        revoked=row["revoked"],
        budget_period=row["budget_period"],
        capture=row["capture"],
    )


async def _put_api_key(conn: AsyncConnection[Row], k: ApiKeyRecord) -> None:
    await conn.execute(
        "INSERT INTO api_keys (id, user_id, name, token_hash, key_salt, rpm, tpm, budget, created_at, "
        "revoked, budget_period, capture) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET "
        "name = excluded.name, rpm = excluded.rpm, tpm = excluded.tpm, budget = excluded.budget, "
        "revoked = excluded.revoked, budget_period = excluded.budget_period, capture = excluded.capture",
        (
            k.id,
            k.user_id,
            k.name,
            k.token_hash,
            k.key_salt,
            k.rpm,
            k.tpm,
            k.budget,
            k.created_at,
            k.revoked,
            k.budget_period,
            k.capture,
        ),
    )


async def _api_key_by_token_hash(conn: AsyncConnection[Row], token_hash: str) -> ApiKeyRecord | None:
    row = await (await conn.execute("SELECT * FROM api_keys WHERE token_hash = %s", (token_hash,))).fetchone()
    return None if row is None else _key(row)


async def _api_keys(conn: AsyncConnection[Row], user_id: str | None) -> list[ApiKeyRecord]:
    if user_id is None:
        cur = await conn.execute("SELECT * FROM api_keys ORDER BY created_at")
    else:
        cur = await conn.execute("SELECT * FROM api_keys WHERE user_id = %s ORDER BY created_at", (user_id,))
    return [_key(r) for r in await cur.fetchall()]


async def _revoke_api_key(conn: AsyncConnection[Row], key_id: str) -> bool:
    cur = await conn.execute("UPDATE api_keys SET revoked = true WHERE id = %s AND NOT revoked", (key_id,))
    return cur.rowcount > 0


async def _record_usage(conn: AsyncConnection[Row], batch: Sequence[Charge]) -> None:
    check_balanced(batch)
    async with conn.transaction(), conn.cursor() as cur:
        await cur.executemany(
            f"INSERT INTO usage_requests ({USAGE_COLUMNS}) VALUES ({', '.join(['%s'] * 12)})",
            [u.row(u.at) for u, _ in batch],
        )
        await cur.executemany(
            "INSERT INTO ledger_entries (request_id, at, account, amount) VALUES (%s, %s, %s, %s)",
            [(u.id, u.at, account, amount) for u, entries in batch for account, amount in entries],
        )
        # Sorted, so concurrent batches lock the balance rows in one order (no deadlocks).
        await cur.executemany(
            "INSERT INTO account_balances (account, period, amount) VALUES (%s, %s, %s) "
            "ON CONFLICT (account, period) DO UPDATE SET amount = account_balances.amount + excluded.amount",
            sorted(balance_deltas(batch)),
        )


async def _balance(conn: AsyncConnection[Row], account: str, period: str) -> float:
    cur = await conn.execute(
        "SELECT amount FROM account_balances WHERE account = %s AND period = %s", (account, period)
    )
    row = await cur.fetchone()
    return float(row["amount"]) if row else 0.0


async def _usage_summary(conn: AsyncConnection[Row], by: str, since: datetime | None) -> list[UsageSummary]:
    if by not in GROUPS:
        raise InvalidRequest(f"cannot group usage by {by!r}; use one of {', '.join(sorted(GROUPS))}")
    cur = await conn.execute(
        f"SELECT coalesce({by}, '-') AS grp, count(*) AS n, sum(prompt_tokens) AS p, "  # by is whitelisted
        "sum(completion_tokens) AS c, sum(credits) AS cr FROM usage_requests WHERE at >= %s "
        "GROUP BY grp ORDER BY sum(credits) DESC",
        (since or datetime.fromtimestamp(0, UTC),),
    )
    return [
        UsageSummary(r["grp"], r["n"], int(r["p"]), int(r["c"]), float(r["cr"])) for r in await cur.fetchall()
    ]


class PostgresLedger(PostgresBase):
    async def put_api_key(self, record: ApiKeyRecord) -> None:
        async with self._connection() as conn:
            await _put_api_key(conn, record)

    async def api_key_by_token_hash(self, token_hash: str) -> ApiKeyRecord | None:
        async with self._connection() as conn:
            return await _api_key_by_token_hash(conn, token_hash)

    async def api_keys(self, user_id: str | None = None) -> list[ApiKeyRecord]:
        async with self._connection() as conn:
            return await _api_keys(conn, user_id)

    async def revoke_api_key(self, key_id: str) -> bool:
        async with self._connection() as conn:
            return await _revoke_api_key(conn, key_id)

    async def record_usage(self, batch: Sequence[Charge]) -> None:
        async with self._connection() as conn:
            await _record_usage(conn, batch)

    async def balance(self, account: str, period: str = "total") -> float:
        async with self._connection() as conn:
            return await _balance(conn, account, period)

    async def usage_summary(self, by: str, since: datetime | None) -> list[UsageSummary]:
        async with self._connection() as conn:
            return await _usage_summary(conn, by, since)
