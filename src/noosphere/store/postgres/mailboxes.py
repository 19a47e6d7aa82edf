"""PostgreSQL statements for the message bus: mailboxes and topic subscriptions. Claims lock
their rows with ``FOR UPDATE SKIP LOCKED``, so consumers in several processes never share one."""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import AsyncConnection

from noosphere.store.contract import (
    ClaimedMail,
    MailCounts,
    MailRow,
)
from noosphere.store.postgres.base import PostgresBase
from noosphere.store.postgres.sql import Row


async def _enqueue(conn: AsyncConnection[Row], rows: Sequence[MailRow], now: float) -> list[bool]:
    cur = await conn.execute(
        "INSERT INTO mailbox (mailbox, id, priority, visible_at, expires_at, body) "
        "SELECT m, i, p, %s, e, b FROM unnest(%s::text[], %s::text[], %s::smallint[], "
        "%s::double precision[], %s::text[]) AS t(m, i, p, e, b) "
        "ON CONFLICT (mailbox, id) DO NOTHING RETURNING mailbox, id",
        (
            now,
            [r.mailbox for r in rows],
            [r.id for r in rows],
            [r.priority for r in rows],
            [r.expires_at for r in rows],
            [r.body for r in rows],
        ),
    )
    inserted = {(r["mailbox"], r["id"]) for r in await cur.fetchall()}
    out = []
    for row in rows:  # a second copy of one id in the same batch is a duplicate
        key = (row.mailbox, row.id)
        out.append(key in inserted)
        inserted.discard(key)
    return out


async def _claim(
    conn: AsyncConnection[Row], mailbox: str, now: float, lease: float, limit: int, max_attempts: int
) -> list[ClaimedMail]:
    out: list[ClaimedMail] = []
    async with conn.transaction():
        while len(out) < limit:
            cur = await conn.execute(
                "WITH picked AS (SELECT seq FROM mailbox WHERE mailbox = %s AND state = 'ready' "
                "AND visible_at <= %s AND (expires_at IS NULL OR expires_at > %s) "
                "ORDER BY priority DESC, seq LIMIT %s FOR UPDATE SKIP LOCKED) "
                "UPDATE mailbox m SET "
                "attempts = CASE WHEN m.attempts >= %s THEN m.attempts ELSE m.attempts + 1 END, "
                "state = CASE WHEN m.attempts >= %s THEN 'dead' ELSE 'ready' END, "
                "done_at = CASE WHEN m.attempts >= %s THEN %s END, visible_at = %s "
                "FROM picked WHERE m.seq = picked.seq "
                "RETURNING m.seq, m.id, m.body, m.attempts, m.state, m.priority",
                (mailbox, now, now, limit - len(out), *[max_attempts] * 3, now, now + lease),
            )
            rows = await cur.fetchall()
            if not rows:
                break
            rows.sort(key=lambda r: (-r["priority"], r["seq"]))
            out.extend(ClaimedMail(r["id"], r["body"], r["attempts"]) for r in rows if r["state"] == "ready")
            if all(r["state"] == "ready" for r in rows):
                break
    return out


async def _ack(conn: AsyncConnection[Row], mailbox: str, ids: Sequence[str], now: float) -> list[str]:
    cur = await conn.execute(
        "UPDATE mailbox SET state = 'acked', done_at = %s "
        "WHERE mailbox = %s AND state = 'ready' AND id = ANY(%s) RETURNING id",
        (now, mailbox, list(ids)),
    )
    return [r["id"] for r in await cur.fetchall()]


async def _release(
    conn: AsyncConnection[Row], mailbox: str, ids: Sequence[str], visible_at: float, now: float
) -> int:
    cur = await conn.execute(
        "UPDATE mailbox SET visible_at = %s WHERE mailbox = %s AND state = 'ready' "
        "AND attempts > 0 AND visible_at > %s AND id = ANY(%s)",
        (visible_at, mailbox, now, list(ids)),
    )
    return cur.rowcount


async def _subscribe(conn: AsyncConnection[Row], subscriber: str, pattern: str) -> None:
    await conn.execute(
        "INSERT INTO subscriptions (subscriber, pattern) VALUES (%s, %s) ON CONFLICT DO NOTHING",
        (subscriber, pattern),
    )


async def _unsubscribe(conn: AsyncConnection[Row], subscriber: str, pattern: str) -> bool:
    cur = await conn.execute(
        "DELETE FROM subscriptions WHERE subscriber = %s AND pattern = %s", (subscriber, pattern)
    )
    return cur.rowcount > 0


async def _subscriptions(conn: AsyncConnection[Row], subscriber: str | None) -> list[tuple[str, str]]:
    cur = await conn.execute(
        "SELECT subscriber, pattern FROM subscriptions WHERE %s::text IS NULL OR subscriber = %s "
        "ORDER BY subscriber, pattern",
        (subscriber, subscriber),
    )
    return [(r["subscriber"], r["pattern"]) for r in await cur.fetchall()]


async def _counts(conn: AsyncConnection[Row], mailbox: str | None, now: float) -> list[MailCounts]:
    cur = await conn.execute(
        "SELECT mailbox, "
        "count(*) FILTER (WHERE state = 'ready' AND NOT (attempts > 0 AND visible_at > %s)) AS ready, "
        "count(*) FILTER (WHERE state = 'ready' AND attempts > 0 AND visible_at > %s) AS in_flight, "
        "count(*) FILTER (WHERE state = 'dead') AS dead "
        "FROM mailbox WHERE (%s::text IS NULL OR mailbox = %s) AND state <> 'acked' "
        "AND (expires_at IS NULL OR expires_at > %s) GROUP BY mailbox ORDER BY mailbox",
        (now, now, mailbox, mailbox, now),
    )
    return [MailCounts(r["mailbox"], r["ready"], r["in_flight"], r["dead"]) for r in await cur.fetchall()]


async def _purge(conn: AsyncConnection[Row], now: float, settled_before: float) -> int:
    cur = await conn.execute(
        "DELETE FROM mailbox WHERE (state <> 'ready' AND done_at < %s) OR expires_at <= %s",
        (settled_before, now),
    )
    return cur.rowcount


class PostgresMailboxes(PostgresBase):
    async def enqueue_mail(self, rows: Sequence[MailRow], now: float) -> list[bool]:
        if not rows:
            return []
        async with self._connection() as conn:
            return await _enqueue(conn, rows, now)

    async def claim_mail(
        self, mailbox: str, now: float, lease: float, limit: int, max_attempts: int
    ) -> list[ClaimedMail]:
        async with self._connection() as conn:
            return await _claim(conn, mailbox, now, lease, limit, max_attempts)

    async def ack_mail(self, mailbox: str, ids: Sequence[str], now: float) -> list[str]:
        async with self._connection() as conn:
            return await _ack(conn, mailbox, ids, now)

    async def release_mail(self, mailbox: str, ids: Sequence[str], visible_at: float, now: float) -> int:
        async with self._connection() as conn:
            return await _release(conn, mailbox, ids, visible_at, now)

    async def subscribe(self, subscriber: str, pattern: str) -> None:
        async with self._connection() as conn:
            await _subscribe(conn, subscriber, pattern)

    async def unsubscribe(self, subscriber: str, pattern: str) -> bool:
        async with self._connection() as conn:
            return await _unsubscribe(conn, subscriber, pattern)

    async def subscriptions(self, subscriber: str | None = None) -> list[tuple[str, str]]:
        async with self._connection() as conn:
            return await _subscriptions(conn, subscriber)

    async def mail_counts(self, mailbox: str | None, now: float) -> list[MailCounts]:
        async with self._connection() as conn:
            return await _counts(conn, mailbox, now)

    async def purge_mail(self, now: float, settled_before: float) -> int:
        async with self._connection() as conn:
            return await _purge(conn, now, settled_before)
