"""The federated side of the SQLite store (``contract/federation.py``): the change feed peers
pull, read through the ``federated_memories`` view, and applying what was pulled from them."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np

from noosphere.memory.model import Memory, Zone
from noosphere.store.contract import StoredPeer, Vector, refuse_unfederated
from noosphere.store.sqlite import sql
from noosphere.store.sqlite.memories import SQLiteMemories


class SQLiteFederation(SQLiteMemories):
    async def federated_changes(self, after_seq: int, limit: int) -> list[tuple[Memory, Vector | None]]:
        def op(conn: sqlite3.Connection) -> list[tuple[Memory, Vector | None]]:
            rows = conn.execute(
                f"SELECT {sql.COLUMNS}, embedding FROM federated_memories WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit),
            ).fetchall()
            return [(sql.memory_of(r), _vector(r["embedding"])) for r in rows]

        return await self._run(op)

    async def federation_cursor(self, peer: str) -> int:
        def op(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT seq FROM federation_cursors WHERE peer = ?", (peer,)).fetchone()
            return 0 if row is None else int(row[0])

        return await self._run(op)

    async def apply_federated(
        self, peer: str, records: Sequence[tuple[Memory, Vector | None]], cursor: int
    ) -> int:
        refuse_unfederated(records)

        def body(conn: sqlite3.Connection) -> tuple[int, bool]:
            changed, erased = 0, False
            for memory, vector in records:
                row = conn.execute(
                    "SELECT zone, tombstone, hlc, invalid_at FROM memories WHERE id = ?", (memory.id,)
                ).fetchone()
                if row is None:
                    index_text = None if memory.tombstone else memory.content
                    self._insert(conn, memory, index_text, None if memory.tombstone else vector)
                    changed += 1
                elif row["zone"] != Zone.FEDERATED.value:  # an id of this node's own: not the peer's
                    continue
                elif memory.tombstone and not row["tombstone"] and memory.hlc >= row["hlc"]:
                    self._erase(conn, memory.id, memory.hlc, sql.ts(memory.invalid_at))
                    changed, erased = changed + 1, True
                elif memory.invalid_at is not None and row["invalid_at"] is None and not memory.tombstone:
                    conn.execute(
                        "UPDATE memories SET invalid_at = ?, seq = ? WHERE id = ?",
                        (sql.ts(memory.invalid_at), self._next_seq(conn), memory.id),
                    )
                    changed += 1
            conn.execute(
                "INSERT INTO federation_cursors (peer, seq) VALUES (?, ?) "
                "ON CONFLICT (peer) DO UPDATE SET seq = excluded.seq",
                (peer, cursor),
            )
            return changed, erased

        def op(conn: sqlite3.Connection) -> int:
            changed, erased = self._transaction(conn, lambda: body(conn))
            self._sync_index(conn)
            if erased:
                self._erase_traces(conn)
            return changed

        return await self._run(op)

    async def put_peer(self, peer: StoredPeer) -> None:
        await self._run(
            lambda conn: conn.execute(
                "INSERT INTO federation_peers (id, public_key, url, added_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET public_key = excluded.public_key, url = excluded.url",
                (peer.id, peer.public_key, peer.url, peer.added_at.timestamp()),
            )
        )

    async def stored_peers(self) -> list[StoredPeer]:
        def op(conn: sqlite3.Connection) -> list[StoredPeer]:
            rows = conn.execute("SELECT id, public_key, url, added_at FROM federation_peers ORDER BY id")
            return [StoredPeer(r[0], r[1], r[2], datetime.fromtimestamp(r[3], UTC)) for r in rows]

        return await self._run(op)

    async def remove_peer(self, peer_id: str) -> bool:
        def body(conn: sqlite3.Connection) -> bool:
            conn.execute("DELETE FROM federation_cursors WHERE peer = ?", (peer_id,))
            return conn.execute("DELETE FROM federation_peers WHERE id = ?", (peer_id,)).rowcount > 0

        return await self._run(lambda conn: self._transaction(conn, lambda: body(conn)))

    async def set_paused(self, target: str, paused: bool) -> bool:
        statement = (
            "INSERT INTO federation_pauses (target) VALUES (?) ON CONFLICT DO NOTHING"
            if paused
            else "DELETE FROM federation_pauses WHERE target = ?"
        )
        return await self._run(lambda conn: conn.execute(statement, (target,)).rowcount > 0)

    async def paused(self) -> set[str]:
        return await self._run(
            lambda conn: {r[0] for r in conn.execute("SELECT target FROM federation_pauses")}
        )


def _vector(blob: bytes | None) -> Vector | None:
    return None if blob is None else np.frombuffer(blob, dtype=np.float32).copy()
