"""PostgreSQL statements for a cluster of node processes (``noosphere/cluster/``): membership,
leases, the shared identity, and the state that must be exact across processes — fairness
counters, rate-limit windows and budget holds. Times are the database's, never a process's own
clock. Serialisation per key uses transaction-scoped advisory locks, so two processes admitting
requests of one API key take turns while other keys proceed."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from psycopg import AsyncConnection

from noosphere.store.contract import Holds
from noosphere.store.postgres.base import PostgresBase
from noosphere.store.postgres.sql import Row

T = TypeVar("T")
RATE_WINDOW_S = 60.0
_NOW = "extract(epoch from clock_timestamp())"


@dataclass(frozen=True)
class RateAsk(Generic[T]):
    """One request to admit against its key's last minute (``rate_windows``)."""

    key_id: str
    decide: Callable[[float, list[tuple[float, int, int]]], T]  # (now, entries) -> decision
    charge: Callable[[T], int | None]  # the decision -> tokens to count, or None: not admitted


@dataclass(frozen=True)
class CreditAsk:
    """One request's reservation of budget credits (``hold_credits``)."""

    account: str
    period: str
    decide: Callable[[float, Holds], float]  # (spent, holds) -> credits to reserve; raises to refuse


@dataclass(frozen=True)
class ProcessRecord:
    id: str
    name: str
    url: str
    age: float  # seconds since it started
    silent: float  # seconds since it was last seen


async def _lock(conn: AsyncConnection[Row], scope: str, key: str) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"{scope}:{key}",))


async def _count(conn: AsyncConnection[Row], rows: Sequence[tuple[str, int, int, int]]) -> None:
    """Add (key, second, requests, tokens) rows to the rate windows."""
    if not rows:
        return
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO rate_seconds (key_id, second, requests, tokens) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (key_id, second) DO UPDATE SET "
            "requests = rate_seconds.requests + excluded.requests, "
            "tokens = rate_seconds.tokens + excluded.tokens",
            rows,
        )


async def _holds(conn: AsyncConnection[Row], account: str) -> Holds:
    cur = await conn.execute(
        "SELECT coalesce(sum(reserved), 0) AS r, coalesce(sum(pending), 0) AS p FROM credit_holds "
        "WHERE account = %s",
        (account,),
    )
    row = await cur.fetchone()
    assert row is not None
    return Holds(float(row["r"]), float(row["p"]))


async def _move(
    conn: AsyncConnection[Row], account: str, process: str, reserved: float, pending: float
) -> None:
    await conn.execute(
        "INSERT INTO credit_holds (account, process, reserved, pending) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (account, process) DO UPDATE SET reserved = credit_holds.reserved + excluded.reserved, "
        "pending = credit_holds.pending + excluded.pending",
        (account, process, reserved, pending),
    )


class PostgresCluster(PostgresBase):
    # -- membership ----------------------------------------------------------------------------
    async def join_cluster(self, process: str, name: str, url: str) -> None:
        async with self._connection() as conn:
            await conn.execute(
                "INSERT INTO cluster_processes (id, name, url) VALUES (%s, %s, %s)", (process, name, url)
            )

    async def beat(self, process: str) -> bool:
        """Renew the process's liveness; False if it was taken for dead meanwhile (reaped)."""
        async with self._connection() as conn:
            cur = await conn.execute("UPDATE cluster_processes SET seen_at = now() WHERE id = %s", (process,))
            return cur.rowcount == 1

    async def leave_cluster(self, process: str) -> None:
        async with self._connection() as conn, conn.transaction():
            await self._forget_processes(conn, [process])

    async def cluster_processes(self) -> list[ProcessRecord]:
        async with self._connection() as conn:
            cur = await conn.execute(
                "SELECT id, name, url, extract(epoch from now() - started_at) AS age, "
                "extract(epoch from now() - seen_at) AS silent FROM cluster_processes ORDER BY started_at, id"
            )
            return [
                ProcessRecord(r["id"], r["name"], r["url"], float(r["age"]), float(r["silent"]))
                for r in await cur.fetchall()
            ]

    async def reap_processes(self, silent_for: float) -> list[str]:
        """Forget processes silent for ``silent_for`` seconds with their leases and held credits;
        returns their ids."""
        async with self._connection() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT id FROM cluster_processes WHERE seen_at < now() - make_interval(secs => %s) "
                "FOR UPDATE SKIP LOCKED",
                (silent_for,),
            )
            dead = [r["id"] for r in await cur.fetchall()]
            if dead:
                await self._forget_processes(conn, dead)
            return dead

    @staticmethod
    async def _forget_processes(conn: AsyncConnection[Row], ids: Sequence[str]) -> None:
        await conn.execute("DELETE FROM cluster_leases WHERE holder = ANY(%s)", (list(ids),))
        await conn.execute("DELETE FROM credit_holds WHERE process = ANY(%s)", (list(ids),))
        await conn.execute("DELETE FROM cluster_processes WHERE id = ANY(%s)", (list(ids),))

    async def claim_identity(self, node_id: str, public_key: str) -> str:
        """Record the cluster's node identity if none is yet; returns the one recorded."""
        async with self._connection() as conn:
            await conn.execute(
                "INSERT INTO cluster_identity (node_id, public_key) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (node_id, public_key),
            )
            row = await (await conn.execute("SELECT node_id FROM cluster_identity")).fetchone()
            assert row is not None
            return str(row["node_id"])

    # -- seen once -----------------------------------------------------------------------------
    async def first_time(self, scope: str, key: str, keep_seconds: float) -> bool:
        """Record ``key`` in ``scope`` for ``keep_seconds``; False if it was recorded before and
        has not been forgotten yet (whichever process recorded it)."""
        async with self._connection() as conn:
            cur = await conn.execute(
                f"INSERT INTO cluster_once (scope, key, forget_at) VALUES (%s, %s, {_NOW} + %s) "
                "ON CONFLICT (scope, key) DO UPDATE SET forget_at = excluded.forget_at "
                f"WHERE cluster_once.forget_at < {_NOW}",
                (scope, key, keep_seconds),
            )
            return cur.rowcount == 1

    async def forget_seen(self) -> int:
        """Drop what may be forgotten now."""
        async with self._connection() as conn:
            cur = await conn.execute(f"DELETE FROM cluster_once WHERE forget_at < {_NOW}")
            return cur.rowcount

    # -- leases --------------------------------------------------------------------------------
    async def take_lease(self, name: str, holder: str, seconds: float) -> bool:
        """Hold (or keep holding) ``name`` for ``seconds``; False while another holder's lease runs."""
        async with self._connection() as conn:
            cur = await conn.execute(
                "INSERT INTO cluster_leases (name, holder, expires_at) "
                "VALUES (%s, %s, now() + make_interval(secs => %s)) ON CONFLICT (name) DO UPDATE SET "
                "holder = excluded.holder, expires_at = excluded.expires_at "
                "WHERE cluster_leases.holder = excluded.holder OR cluster_leases.expires_at < now()",
                (name, holder, seconds),
            )
            return cur.rowcount == 1

    async def drop_lease(self, name: str, holder: str) -> None:
        async with self._connection() as conn:
            await conn.execute("DELETE FROM cluster_leases WHERE name = %s AND holder = %s", (name, holder))

    async def lease_holders(self, prefix: str = "") -> dict[str, str]:
        """Unexpired leases whose name starts with ``prefix``: name → holder."""
        async with self._connection() as conn:
            cur = await conn.execute(
                "SELECT name, holder FROM cluster_leases WHERE expires_at >= now() AND starts_with(name, %s)",
                (prefix,),
            )
            return {r["name"]: r["holder"] for r in await cur.fetchall()}

    # -- fairness counters ---------------------------------------------------------------------
    async def add_service(self, deltas: Mapping[str, float], floors: Mapping[str, float]) -> dict[str, float]:
        """Add each user's newly counted service to its shared counter (raised first to its floor,
        the lift a returning user gets); returns the counters of every user named."""
        users = sorted(set(deltas) | set(floors))  # one lock order across processes
        if not users:
            return {}
        rows = [(u, deltas.get(u, 0.0), floors.get(u, 0.0)) for u in users]
        async with self._connection() as conn, conn.transaction(), conn.cursor() as cur:
            # One pipelined batch, rows in one order across processes (no deadlocks).
            await cur.executemany(
                "INSERT INTO fair_counters (principal, service) VALUES (%s, %s + %s) "
                "ON CONFLICT (principal) DO UPDATE SET "
                "service = greatest(fair_counters.service, %s) + %s RETURNING principal, service",
                [(user, floor, delta, floor, delta) for user, delta, floor in rows],
                returning=True,
            )
            out: dict[str, float] = {}
            while True:
                for row in await cur.fetchall():
                    out[row["principal"]] = float(row["service"])
                if not cur.nextset():
                    return out

    # -- rate limits ---------------------------------------------------------------------------
    async def rate_windows(self, asks: Sequence[RateAsk[T]]) -> list[T | Exception]:
        """Admit requests against their keys' last minute, in order, in one transaction: under each
        key's lock, each ask ``decide``s on (now, the key's minute as one (end of second, tokens,
        requests) entry per second, counting the asks admitted before it); when its ``charge``
        gives a token count, one request of that many tokens counts in this second. A second
        counts until a minute after its end, so the window is never less than a minute. Atomic
        across processes; at most 61 rows per key, whatever its rate. An ask whose ``decide``
        raises gets its exception back; the others go on."""
        keys = sorted({ask.key_id for ask in asks})
        async with self._connection() as conn, conn.transaction():
            for key_id in keys:  # one lock order across processes
                await _lock(conn, "rate", key_id)
            row = await (await conn.execute(f"SELECT {_NOW} AS now")).fetchone()
            assert row is not None
            now = float(row["now"])
            gone = now - RATE_WINDOW_S - 1  # a second ending a minute ago or earlier
            await conn.execute(
                "DELETE FROM rate_seconds WHERE key_id = ANY(%s) AND second <= %s", (keys, gone)
            )
            cur = await conn.execute(
                "SELECT key_id, second, tokens, requests FROM rate_seconds WHERE key_id = ANY(%s) "
                "ORDER BY key_id, second",
                (keys,),
            )
            seconds: dict[str, dict[int, list[int]]] = {k: {} for k in keys}
            for r in await cur.fetchall():
                seconds[r["key_id"]][int(r["second"])] = [int(r["tokens"]), int(r["requests"])]
            this_second = math.floor(now)
            counted: dict[str, list[int]] = {}
            out: list[T | Exception] = []
            for ask in asks:
                held = seconds[ask.key_id]
                entries = [(second + 1.0, t, n) for second, (t, n) in sorted(held.items())]
                try:
                    decision = ask.decide(now, entries)
                except Exception as exc:  # noqa: BLE001 - this ask's refusal, handed back to it
                    out.append(exc)
                    continue
                out.append(decision)
                tokens = ask.charge(decision)
                if tokens is not None:
                    current = held.setdefault(this_second, [0, 0])
                    current[0] += tokens
                    current[1] += 1
                    added = counted.setdefault(ask.key_id, [0, 0])
                    added[0] += tokens
                    added[1] += 1
            if counted:
                await _count(conn, [(k, this_second, n, t) for k, (t, n) in sorted(counted.items())])
            return out

    async def rate_charge(self, charges: Mapping[str, int]) -> None:
        """Add tokens known only after requests (their completions) to each key's current second."""
        async with self._connection() as conn, conn.transaction():
            row = await (await conn.execute(f"SELECT {_NOW} AS now")).fetchone()
            assert row is not None
            second = math.floor(float(row["now"]))
            await _count(conn, [(k, second, 0, t) for k, t in sorted(charges.items()) if t > 0])

    # -- budget holds --------------------------------------------------------------------------
    async def hold_credits(self, process: str, asks: Sequence[CreditAsk]) -> list[float | Exception]:
        """Reserve credits for requests, in order, in one transaction: under each account's lock,
        each ask ``decide``s how many credits to reserve from what its account has spent in its
        period (written usage) and what requests in flight hold (counting the asks granted before
        it); they are held for ``process``. An ask whose ``decide`` raises (a refusal) gets its
        exception back; the others go on. Atomic across processes."""
        accounts = sorted({ask.account for ask in asks})
        async with self._connection() as conn, conn.transaction():
            for account in accounts:  # one lock order across processes
                await _lock(conn, "credits", account)
            cur = await conn.execute(
                "SELECT account, period, amount FROM account_balances "
                "WHERE account = ANY(%s) AND period = ANY(%s)",
                (accounts, sorted({ask.period for ask in asks})),
            )
            spent = {(r["account"], r["period"]): -float(r["amount"]) for r in await cur.fetchall()}
            cur = await conn.execute(
                "SELECT account, sum(reserved) AS r, sum(pending) AS p FROM credit_holds "
                "WHERE account = ANY(%s) GROUP BY account",
                (accounts,),
            )
            holds = {a: Holds() for a in accounts}
            for r in await cur.fetchall():
                holds[r["account"]] = Holds(float(r["r"]), float(r["p"]))
            granted: dict[str, float] = {}
            out: list[float | Exception] = []
            for ask in asks:
                held = holds[ask.account]
                try:
                    credits = ask.decide(spent.get((ask.account, ask.period), 0.0), held)
                except Exception as exc:  # noqa: BLE001 - this ask's refusal, handed back to it
                    out.append(exc)
                    continue
                out.append(credits)
                holds[ask.account] = Holds(held.reserved + credits, held.pending)
                granted[ask.account] = granted.get(ask.account, 0.0) + credits
            for account, credits in sorted(granted.items()):
                if credits:
                    await _move(conn, account, process, credits, 0.0)
            return out

    async def move_credits(self, process: str, moves: Mapping[str, tuple[float, float]]) -> None:
        """Add (reserved, pending) deltas to the process's holds of each account."""
        async with self._connection() as conn, conn.transaction():
            for account in sorted(moves):
                reserved, pending = moves[account]
                await _move(conn, account, process, reserved, pending)
            await conn.execute(
                "DELETE FROM credit_holds "
                "WHERE process = %s AND abs(reserved) < 1e-9 AND abs(pending) < 1e-9",
                (process,),
            )

    async def set_credits(self, process: str, holds: Mapping[str, tuple[float, float]]) -> None:
        """Replace the process's holds with ``holds``: account → (reserved, pending)."""
        async with self._connection() as conn, conn.transaction():
            await conn.execute("DELETE FROM credit_holds WHERE process = %s", (process,))
            for account in sorted(holds):
                reserved, pending = holds[account]
                await _move(conn, account, process, reserved, pending)

    async def credit_holds(self, account: str) -> Holds:
        async with self._connection() as conn:
            return await _holds(conn, account)


__all__ = ["CreditAsk", "PostgresCluster", "ProcessRecord", "RateAsk"]
