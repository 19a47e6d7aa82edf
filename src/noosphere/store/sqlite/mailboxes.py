"""SQLite statements for the message bus: mailboxes and topic subscriptions. Each function runs
inside the caller's transaction (``BEGIN IMMEDIATE`` for writes, so claimers never collide)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from noosphere.store.contract import (
    ClaimedMail,
    MailCounts,
    MailRow,
)
from noosphere.store.sqlite.base import SQLiteBase


def _marks(ids: Sequence[str]) -> str:
    return ",".join("?" * len(ids))


def _enqueue(conn: sqlite3.Connection, rows: Sequence[MailRow], now: float) -> list[bool]:
    inserted = []
    for row in rows:
        cur = conn.execute(
            "INSERT INTO mailbox (mailbox, id, priority, visible_at, expires_at, body) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (mailbox, id) DO NOTHING",
            (row.mailbox, row.id, row.priority, now, row.expires_at, row.body),
        )
        inserted.append(cur.rowcount == 1)
    return inserted


def _claim(
    conn: sqlite3.Connection, mailbox: str, now: float, lease: float, limit: int, max_attempts: int
) -> list[ClaimedMail]:
    out: list[ClaimedMail] = []
    while len(out) < limit:
        rows = conn.execute(
            "SELECT seq, id, body, attempts FROM mailbox WHERE mailbox = ? AND state = 'ready' "
            "AND visible_at <= ? AND (expires_at IS NULL OR expires_at > ?) "
            "ORDER BY priority DESC, seq LIMIT ?",
            (mailbox, now, now, limit - len(out)),
        ).fetchall()
        if not rows:
            break
        live = [r for r in rows if r["attempts"] < max_attempts]
        dead = [r["seq"] for r in rows if r["attempts"] >= max_attempts]
        if dead:
            conn.execute(
                f"UPDATE mailbox SET state = 'dead', done_at = ? WHERE seq IN ({_marks(dead)})",
                (now, *dead),
            )
        if live:
            conn.execute(
                f"UPDATE mailbox SET attempts = attempts + 1, visible_at = ? WHERE seq IN ({_marks(live)})",
                (now + lease, *(r["seq"] for r in live)),
            )
        out.extend(ClaimedMail(r["id"], r["body"], r["attempts"] + 1) for r in live)
        if not dead:
            break
    return out


def _ack(conn: sqlite3.Connection, mailbox: str, ids: Sequence[str], now: float) -> list[str]:
    rows = conn.execute(
        f"UPDATE mailbox SET state = 'acked', done_at = ? "
        f"WHERE mailbox = ? AND state = 'ready' AND id IN ({_marks(ids)}) RETURNING id",
        (now, mailbox, *ids),
    ).fetchall()
    return [r["id"] for r in rows]


def _release(
    conn: sqlite3.Connection, mailbox: str, ids: Sequence[str], visible_at: float, now: float
) -> int:
    cur = conn.execute(
        f"UPDATE mailbox SET visible_at = ? WHERE mailbox = ? AND state = 'ready' "
        f"AND attempts > 0 AND visible_at > ? AND id IN ({_marks(ids)})",
        (visible_at, mailbox, now, *ids),
    )
    return cur.rowcount


def _subscribe(conn: sqlite3.Connection, subscriber: str, pattern: str) -> None:
    conn.execute(
        "INSERT INTO subscriptions (subscriber, pattern) VALUES (?, ?) ON CONFLICT DO NOTHING",
        (subscriber, pattern),
    )


def _unsubscribe(conn: sqlite3.Connection, subscriber: str, pattern: str) -> bool:
    cur = conn.execute(
        "DELETE FROM subscriptions WHERE subscriber = ? AND pattern = ?", (subscriber, pattern)
    )
    return cur.rowcount > 0


def _subscriptions(conn: sqlite3.Connection, subscriber: str | None) -> list[tuple[str, str]]:
    rows = conn.execute(
        "SELECT subscriber, pattern FROM subscriptions WHERE ? IS NULL OR subscriber = ? "
        "ORDER BY subscriber, pattern",
        (subscriber, subscriber),
    ).fetchall()
    return [(r["subscriber"], r["pattern"]) for r in rows]


def _counts(conn: sqlite3.Connection, mailbox: str | None, now: float) -> list[MailCounts]:
    rows = conn.execute(
        "SELECT mailbox, "
        "sum(state = 'ready' AND NOT (attempts > 0 AND visible_at > ?)) AS ready, "
        "sum(state = 'ready' AND attempts > 0 AND visible_at > ?) AS in_flight, "
        "sum(state = 'dead') AS dead "
        "FROM mailbox WHERE (? IS NULL OR mailbox = ?) AND state <> 'acked' "
        "AND (expires_at IS NULL OR expires_at > ?) GROUP BY mailbox ORDER BY mailbox",
        (now, now, mailbox, mailbox, now),
    ).fetchall()
    return [MailCounts(r["mailbox"], r["ready"], r["in_flight"], r["dead"]) for r in rows]


def _purge(conn: sqlite3.Connection, now: float, settled_before: float) -> int:
    cur = conn.execute(
        "DELETE FROM mailbox WHERE (state <> 'ready' AND done_at < ?) OR expires_at <= ?",
        (settled_before, now),
    )
    return cur.rowcount


class SQLiteMailboxes(SQLiteBase):
    async def enqueue_mail(self, rows: Sequence[MailRow], now: float) -> list[bool]:
        return await self._run(lambda conn: self._transaction(conn, lambda: _enqueue(conn, rows, now)))

    async def claim_mail(
        self, mailbox: str, now: float, lease: float, limit: int, max_attempts: int
    ) -> list[ClaimedMail]:
        def op(conn: sqlite3.Connection) -> list[ClaimedMail]:
            return self._transaction(conn, lambda: _claim(conn, mailbox, now, lease, limit, max_attempts))

        return await self._run(op)

    async def ack_mail(self, mailbox: str, ids: Sequence[str], now: float) -> list[str]:
        if not ids:
            return []
        return await self._run(lambda conn: self._transaction(conn, lambda: _ack(conn, mailbox, ids, now)))

    async def release_mail(self, mailbox: str, ids: Sequence[str], visible_at: float, now: float) -> int:
        if not ids:
            return 0
        return await self._run(lambda conn: _release(conn, mailbox, ids, visible_at, now))

    async def subscribe(self, subscriber: str, pattern: str) -> None:
        await self._run(lambda conn: _subscribe(conn, subscriber, pattern))

    async def unsubscribe(self, subscriber: str, pattern: str) -> bool:
        return await self._run(lambda conn: _unsubscribe(conn, subscriber, pattern))

    async def subscriptions(self, subscriber: str | None = None) -> list[tuple[str, str]]:
        return await self._run(lambda conn: _subscriptions(conn, subscriber))

    async def mail_counts(self, mailbox: str | None, now: float) -> list[MailCounts]:
        return await self._run(lambda conn: _counts(conn, mailbox, now))

    async def purge_mail(self, now: float, settled_before: float) -> int:
        return await self._run(lambda conn: _purge(conn, now, settled_before))
