"""The federated side of the SQLite store (``contract/federation.py``): the change feed peers
pull, read through the ``federated_memories`` view, and applying what was pulled from them."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from noosphere.memory.model import Memory, Zone
from noosphere.store.contract import (
    FederatedItem,
    Replica,
    StoredPeer,
    TreeHead,
    Witnessed,
    refuse_unfederated,
)
from noosphere.store.sqlite import sql
from noosphere.store.sqlite.memories import SQLiteMemories


class SQLiteFederation(SQLiteMemories):
    async def federated_changes(self, after_seq: int, limit: int) -> list[Replica]:
        def op(conn: sqlite3.Connection) -> list[Replica]:
            rows = conn.execute(
                f"SELECT {FEED_COLUMNS} FROM federated_memories WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit),
            ).fetchall()
            return [_replica(r) for r in rows]

        return await self._run(op)

    async def federated_records(self, ids: Sequence[str]) -> list[Replica]:
        def op(conn: sqlite3.Connection) -> list[Replica]:
            marks = ",".join("?" * len(ids))
            rows = conn.execute(
                f"SELECT {FEED_COLUMNS} FROM federated_memories WHERE id IN ({marks}) ORDER BY seq",
                list(ids),
            ).fetchall()
            return [_replica(r) for r in rows]

        return await self._run(op) if ids else []

    async def federated_items(self, after_seq: int) -> list[FederatedItem]:
        def op(conn: sqlite3.Connection) -> list[FederatedItem]:
            rows = conn.execute(
                "SELECT seq, id, hlc, tombstone, origin, seal IS NOT NULL, tags FROM federated_memories "
                "WHERE seq > ? ORDER BY seq",
                (after_seq,),
            )
            return [
                FederatedItem(r[0], r[1], r[2], bool(r[3]), r[4], bool(r[5]), tuple(json.loads(r[6])))
                for r in rows
            ]

        return await self._run(op)

    async def federated_count(self) -> int:
        return await self._run(
            lambda conn: int(conn.execute("SELECT count(*) FROM federated_memories").fetchone()[0])
        )

    async def federation_horizon(self) -> int:
        return await self._run(
            lambda conn: int(
                conn.execute("SELECT value FROM federation_state WHERE name = 'horizon'").fetchone()[0]
            )
        )

    async def drop_federated(self, origin: str, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        marks = ",".join("?" * len(ids))
        where = f"zone = 'federated' AND origin = ? AND id IN ({marks})"
        return await self._run(lambda conn: self._delete_where(conn, where, [origin, *ids]))

    async def federation_cursor(self, peer: str) -> int:
        def op(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT seq FROM federation_cursors WHERE peer = ?", (peer,)).fetchone()
            return 0 if row is None else int(row[0])

        return await self._run(op)

    async def apply_federated(self, peer: str, records: Sequence[Replica], cursor: int | None) -> int:
        refuse_unfederated(records)

        def body(conn: sqlite3.Connection) -> tuple[int, bool]:
            changed, erased = 0, False
            touched: list[Memory] = []
            for record in records:
                memory = record.memory
                row = conn.execute(
                    "SELECT zone, tombstone, hlc FROM memories WHERE id = ?", (memory.id,)
                ).fetchone()
                if row is None:
                    # Whether it is current is derived below, never the peer's say.
                    fresh = memory.model_copy(update={"invalid_at": None}) if not memory.tombstone else memory
                    vector = None if memory.tombstone else record.vector
                    text = None if memory.tombstone else record.index_text or memory.content
                    self._insert(conn, fresh, text, vector, record.seal)
                    changed += 1
                    touched.append(memory)
                elif row["zone"] != Zone.FEDERATED.value:  # an id of this node's own: not the peer's
                    continue
                elif memory.tombstone and not row["tombstone"] and memory.hlc >= row["hlc"]:
                    at = sql.ts(memory.invalid_at)
                    self._erase(conn, memory.id, memory.hlc, at, record.seal)
                    changed, erased = changed + 1, True
                    touched.append(memory)
            for memory in touched:
                changed += self._settle_versions(conn, memory)
            if cursor is not None:
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

    def _settle_versions(self, conn: sqlite3.Connection, memory: Memory) -> int:
        """Mark superseded what ``memory``'s arrival makes so (see ``apply_federated``): the record
        it supersedes, its siblings that lose to the latest, and itself if something already
        supersedes it or a sibling beats it. How many records changed."""
        changed = 0
        if memory.supersedes is not None:
            siblings = conn.execute(
                "SELECT id, hlc, origin, created_at FROM memories "
                "WHERE supersedes = ? AND zone = 'federated'",
                (memory.supersedes,),
            ).fetchall()
            winner = max(siblings, key=lambda r: (r["hlc"], r["origin"]))
            at = winner["created_at"]
            changed += self._invalidate(conn, "id = ?", [memory.supersedes], at)
            changed += self._invalidate(
                conn, "supersedes = ? AND id != ?", [memory.supersedes, winner["id"]], at
            )
        later = conn.execute(
            "SELECT min(created_at) FROM memories WHERE supersedes = ?", (memory.id,)
        ).fetchone()[0]
        if later is not None:
            changed += self._invalidate(conn, "id = ?", [memory.id], later)
        return changed

    def _invalidate(self, conn: sqlite3.Connection, where: str, params: list[Any], at: float) -> int:
        rows = conn.execute(
            f"SELECT id FROM memories WHERE {where} AND zone = 'federated' AND invalid_at IS NULL "
            "AND tombstone = 0",
            params,
        ).fetchall()
        for row in rows:
            conn.execute(
                "UPDATE memories SET invalid_at = ?, seq = ? WHERE id = ?", (at, self._next_seq(conn), row[0])
            )
        return len(rows)

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

    async def witnessed(self) -> list[Witnessed]:
        def op(conn: sqlite3.Connection) -> list[Witnessed]:
            rows = conn.execute(
                "SELECT peer, size, root, at, signature, checked_at, problem, evidence "
                "FROM federation_witness ORDER BY peer"
            )
            return [
                Witnessed(
                    r[0],
                    TreeHead(r[1], bytes(r[2]), datetime.fromtimestamp(r[3], UTC), bytes(r[4])),
                    datetime.fromtimestamp(r[5], UTC),
                    r[6],
                    r[7],
                )
                for r in rows
            ]

        return await self._run(op)

    async def put_witnessed(self, record: Witnessed) -> None:
        head = record.head
        await self._run(
            lambda conn: conn.execute(
                "INSERT INTO federation_witness (peer, size, root, at, signature, checked_at, problem, "
                "evidence) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (peer) DO UPDATE SET "
                "size = excluded.size, root = excluded.root, at = excluded.at, "
                "signature = excluded.signature, checked_at = excluded.checked_at, "
                "problem = excluded.problem, evidence = excluded.evidence",
                (
                    record.peer,
                    head.size,
                    head.root,
                    head.at.timestamp(),
                    head.signature,
                    record.checked_at.timestamp(),
                    record.problem,
                    record.evidence,
                ),
            )
        )

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


FEED_COLUMNS = f"{sql.COLUMNS}, embedding, seal"


def _replica(row: sqlite3.Row) -> Replica:
    blob = row["embedding"]
    vector = None if blob is None else np.frombuffer(blob, dtype=np.float32).copy()
    return Replica(sql.memory_of(row), vector, row["seal"])
