"""The federated side of the PostgreSQL store (``contract/federation.py``): the change feed peers
pull, read through the ``federated_memories`` view, and applying what was pulled from them."""

from __future__ import annotations

from collections.abc import Sequence

from noosphere.memory.model import Memory, Zone
from noosphere.store.contract import NewRecord, StoredPeer, Vector, refuse_unfederated
from noosphere.store.postgres import sql
from noosphere.store.postgres.memories import ERASE, PostgresMemories


class PostgresFederation(PostgresMemories):
    async def federated_changes(self, after_seq: int, limit: int) -> list[tuple[Memory, Vector | None]]:
        async with self._connection() as conn:
            cur = await conn.execute(
                f"SELECT {sql.COLUMNS}, embedding::text AS embedding_text FROM federated_memories "
                "WHERE seq > %s ORDER BY seq LIMIT %s",
                (after_seq, limit),
            )
            return [(sql.memory_of(r), sql.parse_vector(r["embedding_text"])) for r in await cur.fetchall()]

    async def federation_cursor(self, peer: str) -> int:
        async with self._connection() as conn:
            cur = await conn.execute("SELECT seq FROM federation_cursors WHERE peer = %s", (peer,))
            row = await cur.fetchone()
        return 0 if row is None else int(row["seq"])

    async def apply_federated(
        self, peer: str, records: Sequence[tuple[Memory, Vector | None]], cursor: int
    ) -> int:
        refuse_unfederated(records)
        changed, erased = 0, False
        async with self._connection() as conn:
            async with conn.transaction():
                ids = [memory.id for memory, _ in records]
                cur = await conn.execute(
                    "SELECT id, zone, tombstone, hlc, invalid_at FROM memories WHERE id = ANY(%s) FOR UPDATE",
                    (ids,),
                )
                known = {row["id"]: row for row in await cur.fetchall()}
                fresh: dict[str, NewRecord] = {}
                for memory, vector in records:
                    row = known.get(memory.id)
                    if row is None:
                        if memory.id not in fresh:
                            gone = memory.tombstone
                            text = None if gone else memory.content
                            fresh[memory.id] = NewRecord(memory, None if gone else vector, text)
                    elif row["zone"] != Zone.FEDERATED.value:  # an id of this node's own: not the peer's
                        continue
                    elif memory.tombstone and not row["tombstone"] and memory.hlc >= row["hlc"]:
                        await conn.execute(ERASE, (memory.hlc, memory.invalid_at, [memory.id]))
                        changed, erased = changed + 1, True
                    elif memory.invalid_at is not None and row["invalid_at"] is None and not memory.tombstone:
                        await conn.execute(
                            "UPDATE memories SET invalid_at = %s, seq = nextval('memory_seq') WHERE id = %s",
                            (memory.invalid_at, memory.id),
                        )
                        changed += 1
                if fresh:
                    await self._insert(conn, list(fresh.items()))
                    changed += len(fresh)
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
