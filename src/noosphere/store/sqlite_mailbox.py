"""SQLite statements for the message bus: mailboxes and topic subscriptions. Each function runs
inside the caller's transaction (``BEGIN IMMEDIATE`` for writes, so claimers never collide)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from noosphere.store.contract import ClaimedMail, MailCounts, MailRow


def _marks(ids: Sequence[str]) -> str:
    return ",".join("?" * len(ids))


def enqueue(conn: sqlite3.Connection, rows: Sequence[MailRow], now: float) -> list[bool]:
    inserted = []
    for row in rows:
        cur = conn.execute(
            "INSERT INTO mailbox (mailbox, id, priority, visible_at, expires_at, body) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (mailbox, id) DO NOTHING",
            (row.mailbox, row.id, row.priority, now, row.expires_at, row.body),
        )
        inserted.append(cur.rowcount == 1)
    return inserted


def claim(
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


def ack(conn: sqlite3.Connection, mailbox: str, ids: Sequence[str], now: float) -> list[str]:
    rows = conn.execute(
        f"UPDATE mailbox SET state = 'acked', done_at = ? "
        f"WHERE mailbox = ? AND state = 'ready' AND id IN ({_marks(ids)}) RETURNING id",
        (now, mailbox, *ids),
    ).fetchall()
    return [r["id"] for r in rows]


def release(conn: sqlite3.Connection, mailbox: str, ids: Sequence[str], visible_at: float, now: float) -> int:
    cur = conn.execute(
        f"UPDATE mailbox SET visible_at = ? WHERE mailbox = ? AND state = 'ready' "
        f"AND attempts > 0 AND visible_at > ? AND id IN ({_marks(ids)})",
        (visible_at, mailbox, now, *ids),
    )
    return cur.rowcount


def subscribe(conn: sqlite3.Connection, subscriber: str, pattern: str) -> None:
    conn.execute(
        "INSERT INTO subscriptions (subscriber, pattern) VALUES (?, ?) ON CONFLICT DO NOTHING",
        (subscriber, pattern),
    )


def unsubscribe(conn: sqlite3.Connection, subscriber: str, pattern: str) -> bool:
    cur = conn.execute(
        "DELETE FROM subscriptions WHERE subscriber = ? AND pattern = ?", (subscriber, pattern)
    )
    return cur.rowcount > 0


def subscriptions(conn: sqlite3.Connection, subscriber: str | None) -> list[tuple[str, str]]:
    rows = conn.execute(
        "SELECT subscriber, pattern FROM subscriptions WHERE ? IS NULL OR subscriber = ? "
        "ORDER BY subscriber, pattern",
        (subscriber, subscriber),
    ).fetchall()
    return [(r["subscriber"], r["pattern"]) for r in rows]


def counts(conn: sqlite3.Connection, mailbox: str | None, now: float) -> list[MailCounts]:
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


def purge(conn: sqlite3.Connection, now: float, settled_before: float) -> int:
    cur = conn.execute(
        "DELETE FROM mailbox WHERE (state <> 'ready' AND done_at < ?) OR expires_at <= ?",
        (settled_before, now),
    )
    return cur.rowcount
