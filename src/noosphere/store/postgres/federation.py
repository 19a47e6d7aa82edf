"""The federated side of the PostgreSQL store (``contract/federation.py``): the change feed peers
pull, read through the ``federated_memories`` view, and applying what was pulled from them."""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import AsyncConnection

from noosphere.memory.model import Memory, Zone
from noosphere.store.contract import (
    FederatedItem,
    NewRecord,
    Replica,
    StoredPeer,
    TreeHead,
    Witnessed,
    refuse_unfederated,
)
from noosphere.store.postgres import sql
from noosphere.store.postgres.memories import ERASE, PostgresMemories
from noosphere.store.postgres.sql import Row


class PostgresFederation(PostgresMemories):
    async def federated_changes(self, after_seq: int, limit: int) -> list[Replica]:
        async with self._connection() as conn:
            cur = await conn.execute(
                f"SELECT {FEED_COLUMNS} FROM federated_memories WHERE seq > %s ORDER BY seq LIMIT %s",
                (after_seq, limit),
            )
            return [_replica(r) for r in await cur.fetchall()]

    async def federated_records(self, ids: Sequence[str]) -> list[Replica]:
        if not ids:
            return []
        async with self._connection() as conn:
            cur = await conn.execute(
                f"SELECT {FEED_COLUMNS} FROM federated_memories WHERE id = ANY(%s) ORDER BY seq",
                (list(ids),),
            )
            return [_replica(r) for r in await cur.fetchall()]

    async def federated_items(self, after_seq: int) -> list[FederatedItem]:
        async with self._connection() as conn:
            cur = await conn.execute(
                "SELECT seq, id, hlc, tombstone, origin, seal IS NOT NULL AS signed, tags "
                "FROM federated_memories WHERE seq > %s ORDER BY seq",
                (after_seq,),
            )
            return [
                FederatedItem(
                    r["seq"], r["id"], r["hlc"], r["tombstone"], r["origin"], r["signed"], tuple(r["tags"])
                )
                for r in await cur.fetchall()
            ]

    async def federated_count(self) -> int:
        async with self._connection() as conn:
            row = await (await conn.execute("SELECT count(*) AS n FROM federated_memories")).fetchone()
        return 0 if row is None else int(row["n"])

    async def federation_horizon(self) -> int:
        async with self._connection() as conn:
            cur = await conn.execute("SELECT value FROM federation_state WHERE name = 'horizon'")
            row = await cur.fetchone()
        return 0 if row is None else int(row["value"])

    async def drop_federated(self, origin: str, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        return await self._delete_where(
            "zone = 'federated' AND origin = %s AND id = ANY(%s)", [origin, list(ids)]
        )

    async def federation_cursor(self, peer: str) -> int:
        async with self._connection() as conn:
            cur = await conn.execute("SELECT seq FROM federation_cursors WHERE peer = %s", (peer,))
            row = await cur.fetchone()
        return 0 if row is None else int(row["seq"])

    async def apply_federated(self, peer: str, records: Sequence[Replica], cursor: int | None) -> int:
        refuse_unfederated(records)
        changed, erased = 0, False
        async with self._connection() as conn:
            async with conn.transaction():
                ids = [record.memory.id for record in records]
                cur = await conn.execute(
                    "SELECT id, zone, tombstone, hlc FROM memories WHERE id = ANY(%s) FOR UPDATE", (ids,)
                )
                known = {row["id"]: row for row in await cur.fetchall()}
                fresh: dict[str, NewRecord] = {}
                seals: dict[str, str | None] = {}
                touched: list[Memory] = []
                for record in records:
                    memory = record.memory
                    row = known.get(memory.id)
                    if row is None:
                        if memory.id not in fresh:
                            gone = memory.tombstone
                            # Whether it is current is derived below, never the peer's say.
                            kept = memory if gone else memory.model_copy(update={"invalid_at": None})
                            text = None if gone else record.index_text or memory.content
                            fresh[memory.id] = NewRecord(kept, None if gone else record.vector, text)
                            seals[memory.id] = record.seal
                            touched.append(memory)
                    elif row["zone"] != Zone.FEDERATED.value:  # an id of this node's own: not the peer's
                        continue
                    elif memory.tombstone and not row["tombstone"] and memory.hlc >= row["hlc"]:
                        await conn.execute(ERASE, (memory.hlc, memory.invalid_at, record.seal, [memory.id]))
                        changed, erased = changed + 1, True
                        touched.append(memory)
                if fresh:
                    await self._insert(conn, list(fresh.items()))
                    await conn.execute(
                        "UPDATE memories SET seal = t.seal FROM unnest(%s::text[], %s::text[]) "
                        "AS t(id, seal) WHERE memories.id = t.id",
                        (list(seals), list(seals.values())),
                    )
                    changed += len(fresh)
                for memory in touched:
                    changed += await _settle_versions(conn, memory)
                if cursor is not None:
                    await conn.execute(
                        "INSERT INTO federation_cursors (peer, seq) VALUES (%s, %s) "
                        "ON CONFLICT (peer) DO UPDATE SET seq = excluded.seq",
                        (peer, cursor),
                    )
            if erased:
                await conn.execute("VACUUM memories")
        return changed

    async def put_peer(self, peer: StoredPeer) -> None:
        async with self._connection() as conn:
            await conn.execute(
                "INSERT INTO federation_peers (id, public_key, url, added_at) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (id) DO UPDATE SET public_key = excluded.public_key, url = excluded.url",
                (peer.id, peer.public_key, peer.url, peer.added_at),
            )

    async def stored_peers(self) -> list[StoredPeer]:
        async with self._connection() as conn:
            cur = await conn.execute("SELECT id, public_key, url, added_at FROM federation_peers ORDER BY id")
            return [
                StoredPeer(r["id"], r["public_key"], r["url"], r["added_at"]) for r in await cur.fetchall()
            ]

    async def remove_peer(self, peer_id: str) -> bool:
        async with self._connection() as conn, conn.transaction():
            await conn.execute("DELETE FROM federation_cursors WHERE peer = %s", (peer_id,))
            cur = await conn.execute("DELETE FROM federation_peers WHERE id = %s", (peer_id,))
            return cur.rowcount > 0

    async def witnessed(self) -> list[Witnessed]:
        async with self._connection() as conn:
            cur = await conn.execute(
                "SELECT peer, size, root, at, signature, checked_at, problem, evidence "
                "FROM federation_witness ORDER BY peer"
            )
            return [
                Witnessed(
                    r["peer"],
                    TreeHead(r["size"], bytes(r["root"]), r["at"], bytes(r["signature"])),
                    r["checked_at"],
                    r["problem"],
                    r["evidence"],
                )
                for r in await cur.fetchall()
            ]

    async def put_witnessed(self, record: Witnessed) -> None:
        head = record.head
        async with self._connection() as conn:
            await conn.execute(
                "INSERT INTO federation_witness (peer, size, root, at, signature, checked_at, problem, "
                "evidence) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (peer) DO UPDATE SET "
                "size = excluded.size, root = excluded.root, at = excluded.at, "
                "signature = excluded.signature, checked_at = excluded.checked_at, "
                "problem = excluded.problem, evidence = excluded.evidence",
                (
                    record.peer,
                    head.size,
                    head.root,
                    head.at,
                    head.signature,
                    record.checked_at,
                    record.problem,
                    record.evidence,
                ),
            )

    async def set_paused(self, target: str, paused: bool) -> bool:
        statement = (
            "INSERT INTO federation_pauses (target) VALUES (%s) ON CONFLICT DO NOTHING"
            if paused
            else "DELETE FROM federation_pauses WHERE target = %s"
        )
        async with self._connection() as conn:
            return (await conn.execute(statement, (target,))).rowcount > 0

    async def paused(self) -> set[str]:
        async with self._connection() as conn:
            cur = await conn.execute("SELECT target FROM federation_pauses")
            return {r["target"] for r in await cur.fetchall()}


FEED_COLUMNS = f"{sql.COLUMNS}, embedding::text AS embedding_text, seal"

# Mark superseded, among federated records not already so or erased, those matching a condition.
_INVALIDATE = (
    "UPDATE memories SET invalid_at = %s, seq = nextval('memory_seq') WHERE zone = 'federated' "
    "AND invalid_at IS NULL AND NOT tombstone AND "
)


def _replica(row: Row) -> Replica:
    return Replica(sql.memory_of(row), sql.parse_vector(row["embedding_text"]), row["seal"])


async def _settle_versions(conn: AsyncConnection[Row], memory: Memory) -> int:
    """Mark superseded what ``memory``'s arrival makes so (see ``apply_federated``): the record it
    supersedes, its siblings that lose to the latest, and itself if something already supersedes
    it or a sibling beats it. How many records changed."""
    changed = 0
    if memory.supersedes is not None:
        cur = await conn.execute(
            "SELECT id, created_at FROM memories WHERE supersedes = %s AND zone = 'federated' "
            'ORDER BY hlc DESC, origin COLLATE "C" DESC LIMIT 1',
            (memory.supersedes,),
        )
        winner = await cur.fetchone()
        assert winner is not None  # memory itself is one
        at = winner["created_at"]
        changed += (await conn.execute(_INVALIDATE + "id = %s", (at, memory.supersedes))).rowcount
        changed += (
            await conn.execute(
                _INVALIDATE + "supersedes = %s AND id <> %s", (at, memory.supersedes, winner["id"])
            )
        ).rowcount
    cur = await conn.execute("SELECT min(created_at) AS at FROM memories WHERE supersedes = %s", (memory.id,))
    later = await cur.fetchone()
    if later is not None and later["at"] is not None:
        changed += (await conn.execute(_INVALIDATE + "id = %s", (later["at"], memory.id))).rowcount
    return changed
