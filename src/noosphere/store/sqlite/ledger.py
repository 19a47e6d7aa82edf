"""SQLite statements for API keys, usage records and the credit ledger."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime

import orjson

from noosphere.errors import InvalidRequest
from noosphere.store.contract import (
    USAGE_COLUMNS,
    ApiKeyRecord,
    Charge,
    UsageSummary,
    balance_deltas,
    check_balanced,
)
from noosphere.store.sqlite.base import SQLiteBase

GROUPS = {"principal", "key_id", "worker", "model"}


def _key(row: sqlite3.Row) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=row["id"],
        user_id=row["user_id"],
        name=row["name"],
        token_hash=row["token_hash"],
        key_salt=bytes(row["key_salt"]),
        rpm=row["rpm"],
        tpm=row["tpm"],
        budget=row["budget"],
        created_at=datetime.fromtimestamp(row["created_at"], UTC),
        revoked=bool(row["revoked"]),
        budget_period=row["budget_period"],
        capture=bool(row["capture"]),
    )


def _put_api_key(conn: sqlite3.Connection, k: ApiKeyRecord) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO api_keys (id, user_id, name, token_hash, key_salt, rpm, tpm, budget, "
        "created_at, revoked, budget_period, capture) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            k.id,
            k.user_id,
            k.name,
            k.token_hash,
            k.key_salt,
            k.rpm,
            k.tpm,
            k.budget,
            k.created_at.timestamp(),
            int(k.revoked),
            k.budget_period,
            int(k.capture),
        ),
    )


def _api_key_by_token_hash(conn: sqlite3.Connection, token_hash: str) -> ApiKeyRecord | None:
    row = conn.execute("SELECT * FROM api_keys WHERE token_hash = ?", (token_hash,)).fetchone()
    return None if row is None else _key(row)


def _api_keys(conn: sqlite3.Connection, user_id: str | None) -> list[ApiKeyRecord]:
    if user_id is None:
        rows = conn.execute("SELECT * FROM api_keys ORDER BY created_at").fetchall()
    else:
        rows = conn.execute(
            "SELECT * FROM api_keys WHERE user_id = ? ORDER BY created_at", (user_id,)
        ).fetchall()
    return [_key(r) for r in rows]


def _revoke_api_key(conn: sqlite3.Connection, key_id: str) -> bool:
    return (
        conn.execute("UPDATE api_keys SET revoked = 1 WHERE id = ? AND revoked = 0", (key_id,)).rowcount > 0
    )


def _record_usage(conn: sqlite3.Connection, batch: Sequence[Charge]) -> None:
    """Each table's rows in one statement over a JSON array: the sqlite3 module gives up the GIL
    for every step, and a busy event loop holds it for up to the switch interval, so a statement
    per row (executemany) would wait that long per row while the store's lock is held."""
    check_balanced(batch)
    usage = [u.row(u.at.timestamp()) for u, _ in batch]
    conn.execute(f"INSERT INTO usage_requests ({USAGE_COLUMNS}) {_rows(12)}", (orjson.dumps(usage).decode(),))
    moves = [[u.id, u.at.timestamp(), account, amount] for u, entries in batch for account, amount in entries]
    if moves:
        conn.execute(
            f"INSERT INTO ledger_entries (request_id, at, account, amount) {_rows(4)}",
            (orjson.dumps(moves).decode(),),
        )
    deltas = [list(d) for d in sorted(balance_deltas(batch))]
    if deltas:
        conn.execute(
            f"INSERT INTO account_balances (account, period, amount) {_rows(3)} WHERE true "
            "ON CONFLICT (account, period) DO UPDATE SET amount = amount + excluded.amount",
            (orjson.dumps(deltas).decode(),),
        )


def _rows(columns: int) -> str:
    """A SELECT of the rows of a JSON array of arrays (the statement's one parameter)."""
    fields = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(columns))
    return f"SELECT {fields} FROM json_each(?)"


def _balance(conn: sqlite3.Connection, account: str, period: str) -> float:
    row = conn.execute(
        "SELECT amount FROM account_balances WHERE account = ? AND period = ?", (account, period)
    ).fetchone()
    return 0.0 if row is None else float(row[0])


def _usage_summary(conn: sqlite3.Connection, by: str, since: datetime | None) -> list[UsageSummary]:
    if by not in GROUPS:
        raise InvalidRequest(f"cannot group usage by {by!r}; use one of {', '.join(sorted(GROUPS))}")
    rows = conn.execute(
        # ``by`` is whitelisted above
        f"SELECT coalesce({by}, '-') AS grp, count(*), sum(prompt_tokens), sum(completion_tokens), "
        "sum(credits) FROM usage_requests WHERE at >= ? GROUP BY grp ORDER BY sum(credits) DESC",
        (since.timestamp() if since else 0.0,),
    ).fetchall()
    return [UsageSummary(r[0], r[1], r[2], r[3], float(r[4])) for r in rows]


class SQLiteLedger(SQLiteBase):
    async def put_api_key(self, record: ApiKeyRecord) -> None:
        await self._run(lambda conn: _put_api_key(conn, record))

    async def api_key_by_token_hash(self, token_hash: str) -> ApiKeyRecord | None:
        return await self._run(lambda conn: _api_key_by_token_hash(conn, token_hash))

    async def api_keys(self, user_id: str | None = None) -> list[ApiKeyRecord]:
        return await self._run(lambda conn: _api_keys(conn, user_id))

    async def revoke_api_key(self, key_id: str) -> bool:
        return await self._run(lambda conn: _revoke_api_key(conn, key_id))

    async def record_usage(self, batch: Sequence[Charge]) -> None:
        await self._run(lambda conn: self._transaction(conn, lambda: _record_usage(conn, batch)))

    async def balance(self, account: str, period: str = "total") -> float:
        return await self._run(lambda conn: _balance(conn, account, period))

    async def usage_summary(self, by: str, since: datetime | None) -> list[UsageSummary]:
        return await self._run(lambda conn: _usage_summary(conn, by, since))
