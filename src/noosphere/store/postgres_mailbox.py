"""PostgreSQL statements for the message bus: mailboxes and topic subscriptions. Claims lock
their rows with ``FOR UPDATE SKIP LOCKED``, so consumers in several processes never share one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection

from noosphere.store.contract import ClaimedMail, MailCounts, MailRow

Row = dict[str, Any]


async def enqueue(conn: AsyncConnection[Row], rows: Sequence[MailRow], now: float) -> list[bool]:
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


async def claim(
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


async def ack(conn: AsyncConnection[Row], mailbox: str, ids: Sequence[str], now: float) -> list[str]:
    cur = await conn.execute(
        "UPDATE mailbox SET state = 'acked', done_at = %s "
        "WHERE mailbox = %s AND state = 'ready' AND id = ANY(%s) RETURNING id",
        (now, mailbox, list(ids)),
    )
    return [r["id"] for r in await cur.fetchall()]


async def release(
    conn: AsyncConnection[Row], mailbox: str, ids: Sequence[str], visible_at: float, now: float
) -> int:
    cur = await conn.execute(
        "UPDATE mailbox SET visible_at = %s WHERE mailbox = %s AND state = 'ready' "
        "AND attempts > 0 AND visible_at > %s AND id = ANY(%s)",
        (visible_at, mailbox, now, list(ids)),
    )
    return cur.rowcount


async def subscribe(conn: AsyncConnection[Row], subscriber: str, pattern: str) -> None:
    await conn.execute(
        "INSERT INTO subscriptions (subscriber, pattern) VALUES (%s, %s) ON CONFLICT DO NOTHING",
        (subscriber, pattern),
    )


async def unsubscribe(conn: AsyncConnection[Row], subscriber: str, pattern: str) -> bool:
    cur = await conn.execute(
        "DELETE FROM subscriptions WHERE subscriber = %s AND pattern = %s", (subscriber, pattern)
    )
    return cur.rowcount > 0


async def subscriptions(conn: AsyncConnection[Row], subscriber: str | None) -> list[tuple[str, str]]:
    cur = await conn.execute(
        "SELECT subscriber, pattern FROM subscriptions WHERE %s::text IS NULL OR subscriber = %s "
        "ORDER BY subscriber, pattern",
        (subscriber, subscriber),
    )
    return [(r["subscriber"], r["pattern"]) for r in await cur.fetchall()]


async def counts(conn: AsyncConnection[Row], mailbox: str | None, now: float) -> list[MailCounts]:
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


async def purge(conn: AsyncConnection[Row], now: float, settled_before: float) -> int:
    cur = await conn.execute(
        "DELETE FROM mailbox WHERE (state <> 'ready' AND done_at < %s) OR expires_at <= %s",
        (settled_before, now),
    )
    return cur.rowcount
