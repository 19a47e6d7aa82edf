"""Memories: records, embeddings, full-text entries, and the reads search is built from."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from noosphere.memory.model import Filters, Memory
from noosphere.memory.ranking import prune_terms
from noosphere.store.contract import (
    Candidate,
    EmbedderInfo,
    NewRecord,
    Vector,
    Viewer,
)
from noosphere.store.sqlite import sql
from noosphere.store.sqlite.base import SQLiteBase
from noosphere.store.vector_index import ExactVectorIndex, IndexQuery, IndexRow

logger = logging.getLogger(__name__)
T = TypeVar("T")


class SQLiteMemories(SQLiteBase):
    async def _opened(self) -> None:
        await super()._opened()
        await self._run(self._sync_index)

    def _sync_index(self, conn: sqlite3.Connection) -> None:
        """Bring the in-process index up to the database's latest sequence number."""
        head = conn.execute("SELECT value FROM counters WHERE name = 'seq'").fetchone()[0]
        if self._index is None:
            # The dimension changes only through set_embedder_info, which drops the index here;
            # another process re-embedding requires a restart (the node refuses a mismatch).
            dim_row = conn.execute("SELECT value FROM meta WHERE key = 'embedder'").fetchone()
            if dim_row is None:
                return
            self._index = ExactVectorIndex(int(json.loads(dim_row[0])["dimension"]))
        index = self._index
        dimension = index.dimension
        if head <= index.last_seq:
            return
        cursor = conn.execute(
            f"SELECT {sql.INDEX_COLUMNS} FROM memories WHERE seq > ? ORDER BY seq", (index.last_seq,)
        )
        while batch := cursor.fetchmany(4096):
            index.apply(
                IndexRow(
                    rowid=r["rowid"],
                    memory_id=r["id"],
                    # Vectors of another model (mid re-embedding) are left out.
                    vector=None
                    if r["embedding"] is None or r["tombstone"] or len(r["embedding"]) != 4 * dimension
                    else np.frombuffer(r["embedding"], dtype=np.float32),
                    zone=r["zone"],
                    owner=r["owner"],
                    kind=r["kind"],
                    valid_at=r["valid_at"],
                    expires_at=r["expires_at"],
                    live=r["invalid_at"] is None and not r["tombstone"],
                )
                for r in batch
            )
        index.last_seq = head

    async def embedder_info(self) -> EmbedderInfo | None:
        def op(conn: sqlite3.Connection) -> EmbedderInfo | None:
            row = conn.execute("SELECT value FROM meta WHERE key = 'embedder'").fetchone()
            if row is None:
                return None
            data = json.loads(row[0])
            return EmbedderInfo(model_id=data["model_id"], dimension=int(data["dimension"]))

        return await self._run(op)

    async def set_embedder_info(self, info: EmbedderInfo) -> None:
        value = json.dumps({"model_id": info.model_id, "dimension": info.dimension})

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('embedder', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (value,),
            )
            self._index = None
            self._sync_index(conn)

        await self._run(op)

    async def index_format(self) -> str | None:
        def op(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT value FROM meta WHERE key = 'index_format'").fetchone()
            return None if row is None else str(row[0])

        return await self._run(op)

    async def set_index_format(self, value: str) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('index_format', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (value,),
            )

        await self._run(op)

    def _insert(
        self,
        conn: sqlite3.Connection,
        m: Memory,
        index_text: str | None,
        embedding: Vector | None,
        seal: str | None = None,
    ) -> int:
        """Insert one record under the next sequence number, which it returns."""
        seq = self._next_seq(conn)
        conn.execute(
            "INSERT INTO memories (id, seq, zone, owner, kind, content, index_text, tags, "
            "metadata, content_hash, importance, created_at, valid_at, invalid_at, "
            "expires_at, supersedes, thread_id, embedding, embed_model, encrypted, hlc, "
            "origin, tombstone, seal) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                m.id,
                seq,
                m.zone.value,
                m.owner,
                m.kind,
                m.content,
                index_text,
                json.dumps(m.tags),
                json.dumps(m.metadata),
                m.content_hash,
                m.importance,
                m.created_at.timestamp(),
                m.valid_at.timestamp(),
                sql.ts(m.invalid_at),
                sql.ts(m.expires_at),
                m.supersedes,
                m.thread_id,
                None if embedding is None else embedding.astype(np.float32).tobytes(),
                m.embed_model,
                int(m.encrypted),
                m.hlc,
                m.origin,
                int(m.tombstone),
                seal,
            ),
        )
        return seq

    async def write(
        self, records: Sequence[NewRecord], invalidate: Sequence[tuple[str, datetime]]
    ) -> list[Memory]:
        def body(conn: sqlite3.Connection) -> list[Memory]:
            out: list[Memory] = []
            for memory_id, at in invalidate:
                conn.execute(
                    "UPDATE memories SET invalid_at = ?, seq = ? WHERE id = ? AND invalid_at IS NULL",
                    (at.timestamp(), self._next_seq(conn), memory_id),
                )
            for record in records:
                m = record.memory
                existing = conn.execute(
                    f"SELECT {sql.COLUMNS} FROM memories WHERE owner = ? AND zone = ? AND "
                    "content_hash = ? AND tombstone = 0 AND invalid_at IS NULL LIMIT 1",
                    (m.owner, m.zone.value, m.content_hash),
                ).fetchone()
                if existing is not None:
                    out.append(sql.memory_of(existing))
                    continue
                seq = self._insert(conn, m, record.index_text, record.embedding)
                out.append(m.model_copy(update={"seq": seq}))
            return out

        def op(conn: sqlite3.Connection) -> list[Memory]:
            result = self._transaction(conn, lambda: body(conn))
            self._sync_index(conn)
            return result

        return await self._run(op)

    def _erase_traces(self, conn: sqlite3.Connection) -> None:
        # Rebuild the full-text index from the memories table, so no segment keeps a forgotten
        # text's terms, then fold the WAL into the main file (secure_delete zeroes freed pages):
        # no copy of the text stays on disk. Not FTS5's 'optimize' (nor 'merge'): on the SQLite
        # 3.40 that Python 3.11 ships, an 'optimize' after each of about a thousand deletes leaves
        # the index malformed (tests/service/test_forget_on_disk.py repeats it). A rebuild costs
        # time in the size of the index, once per forget call.
        conn.execute("INSERT INTO memories_fts (memories_fts) VALUES ('rebuild')")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _full_text(self, conn: sqlite3.Connection, query: Callable[[], T]) -> T:
        """A full-text read; an index found malformed (a database an older version of the node
        wrote with 'optimize') is rebuilt from the memories table once, and the read repeated."""
        try:
            return query()
        except sqlite3.DatabaseError as exc:
            if not any(sign in str(exc) for sign in ("malformed", "vtable constructor failed")):
                raise
            logger.error("the full-text index is malformed (%s); rebuilding it from the memories", exc)
            self._rebuild_full_text(conn)
            return query()

    def _rebuild_full_text(self, conn: sqlite3.Connection) -> None:
        """Empty the index's own tables (a malformed index cannot even be opened to be rebuilt),
        then index every memory again: its text lives in the memories table."""

        def body() -> None:
            for table in ("memories_fts_data", "memories_fts_idx", "memories_fts_docsize"):
                conn.execute(f"DELETE FROM {table}")
            # An empty index: no averages yet (block 1) and a structure with no segments (block 10).
            conn.execute("INSERT INTO memories_fts_data (id, block) VALUES (1, X''), (10, X'00000000000000')")
            conn.execute("INSERT INTO memories_fts (memories_fts) VALUES ('rebuild')")

        self._transaction(conn, body)
        self._df_cache.clear()

    def _delete_where(self, conn: sqlite3.Connection, where: str, params: Sequence[Any]) -> int:
        def body() -> list[int]:
            rows = conn.execute(f"SELECT rowid FROM memories WHERE {where}", params).fetchall()
            conn.execute(f"DELETE FROM memories WHERE {where}", params)
            return [r[0] for r in rows]

        rowids = self._transaction(conn, body)
        if self._index is not None:
            self._index.remove(rowids)
        if rowids:
            self._erase_traces(conn)
        return len(rowids)

    async def delete(self, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        marks = ",".join("?" * len(ids))
        return await self._run(lambda conn: self._delete_where(conn, f"id IN ({marks})", list(ids)))

    async def tombstone(self, ids: Sequence[str], hlc: int, at: datetime) -> int:
        def op(conn: sqlite3.Connection) -> int:
            def body() -> int:
                count = 0
                for memory_id in ids:
                    count += self._erase(conn, memory_id, hlc, at.timestamp())
                return count

            count = self._transaction(conn, body)
            self._sync_index(conn)
            if count:
                self._erase_traces(conn)
            return count

        return await self._run(op)

    def _erase(
        self,
        conn: sqlite3.Connection,
        memory_id: str,
        hlc: int,
        at: float | None,
        seal: str | None = None,
    ) -> int:
        """Make a memory a tombstone (no content, tags, vector or full-text entry; a new version),
        sealed by its origin if it comes from a peer."""
        return conn.execute(
            "UPDATE memories SET content = '', index_text = NULL, embedding = NULL, "
            "tags = '[]', metadata = '{}', tombstone = 1, hlc = ?, invalid_at = ?, "
            "seal = ?, seq = ? WHERE id = ? AND tombstone = 0",
            (hlc, at, seal, self._next_seq(conn), memory_id),
        ).rowcount

    async def delete_owner(self, owner: str) -> int:
        return await self._run(lambda conn: self._delete_where(conn, "owner = ?", [owner]))

    async def purge_expired(self, now: datetime) -> int:
        return await self._run(
            lambda conn: self._delete_where(
                conn, "expires_at IS NOT NULL AND expires_at <= ?", [now.timestamp()]
            )
        )

    async def latest_stamp(self) -> int:
        return await self._run(
            lambda conn: int(conn.execute("SELECT coalesce(max(hlc), 0) FROM memories").fetchone()[0])
        )

    async def purge_tombstones(self, before: datetime) -> int:
        where, params = "tombstone = 1 AND invalid_at <= ?", [before.timestamp()]

        def op(conn: sqlite3.Connection) -> int:
            # Peers that read the feed only below the last purged federated tombstone resync.
            conn.execute(
                "UPDATE federation_state SET value = max(value, coalesce((SELECT max(seq) FROM "
                f"memories WHERE zone = 'federated' AND {where}), 0)) WHERE name = 'horizon'",
                params,
            )
            return self._delete_where(conn, where, params)

        return await self._run(op)

    async def set_embeddings(self, items: Sequence[tuple[str, Vector]], model_id: str) -> None:
        def op(conn: sqlite3.Connection) -> None:
            def body() -> None:
                for memory_id, vector in items:
                    conn.execute(
                        "UPDATE memories SET embedding = ?, embed_model = ?, seq = ? WHERE id = ?",
                        (
                            vector.astype(np.float32).tobytes(),
                            model_id,
                            self._next_seq(conn),
                            memory_id,
                        ),
                    )

            self._transaction(conn, body)
            self._sync_index(conn)

        await self._run(op)

    async def get(self, memory_id: str, viewer: Viewer) -> Memory | None:
        condition, params = sql.where(viewer, Filters(include_invalid=True), datetime.now(UTC))

        def op(conn: sqlite3.Connection) -> Memory | None:
            query = f"SELECT {sql.COLUMNS} FROM memories m WHERE m.id = ? AND {condition}"
            row = conn.execute(query, [memory_id, *params]).fetchone()
            return None if row is None else sql.memory_of(row)

        return await self._run(op)

    async def successors(self, memory_id: str, viewer: Viewer) -> list[Memory]:
        condition, params = sql.where(viewer, Filters(include_invalid=True), datetime.now(UTC))

        def op(conn: sqlite3.Connection) -> list[Memory]:
            query = (
                f"SELECT {sql.COLUMNS} FROM memories m WHERE m.supersedes = ? AND {condition} ORDER BY m.hlc"
            )
            return [sql.memory_of(row) for row in conn.execute(query, [memory_id, *params]).fetchall()]

        return await self._run(op)

    async def fetch(
        self, ids: Sequence[str], viewer: Viewer, filters: Filters, now: datetime
    ) -> list[Memory]:
        if not ids:
            return []

        def op(conn: sqlite3.Connection) -> list[Memory]:
            where, params = sql.where(viewer, filters, now)
            marks = ",".join("?" * len(ids))
            rows = conn.execute(
                f"SELECT {sql.COLUMNS} FROM memories m WHERE m.id IN ({marks}) AND {where}",
                [*ids, *params],
            ).fetchall()
            return [sql.memory_of(r) for r in rows]

        return await self._run(op)

    async def list_memories(
        self, viewer: Viewer, filters: Filters, now: datetime, limit: int, after_seq: int | None
    ) -> list[Memory]:
        def op(conn: sqlite3.Connection) -> list[Memory]:
            where, params = sql.where(viewer, filters, now)
            if after_seq is not None:
                where += " AND m.seq > ?"
                params.append(after_seq)
            rows = conn.execute(
                f"SELECT {sql.COLUMNS} FROM memories m WHERE {where} ORDER BY m.seq LIMIT ?",
                [*params, limit],
            ).fetchall()
            return [sql.memory_of(r) for r in rows]

        return await self._run(op)

    async def vector_candidates(
        self, vector: Vector, viewer: Viewer, filters: Filters, now: datetime, k: int, centred: bool = False
    ) -> list[Candidate]:
        def op(conn: sqlite3.Connection) -> list[Candidate]:
            self._sync_index(conn)
            if self._index is None:
                return []
            allowed = self._prefiltered(conn, viewer, filters, now)
            hits = self._index.search(vector, _index_query(viewer, filters, now, allowed), k, centred)
            # Rows another process deleted may linger in the index until the next open; the
            # search's fetch drops them.
            return [Candidate(self._index.id_of(r), s, sql.dt(v)) for r, s, v in hits]

        return await self._run(op)

    @staticmethod
    def _prefiltered(
        conn: sqlite3.Connection, viewer: Viewer, filters: Filters, now: datetime
    ) -> NDArray[np.int64] | None:
        """The rows passing filters the index cannot apply itself (tags, metadata, …), if any."""
        if not sql.needs_sql_prefilter(filters):
            return None
        where, params = sql.where(viewer, filters, now)
        return np.fromiter(
            (r[0] for r in conn.execute(f"SELECT m.rowid FROM memories m WHERE {where}", params)),
            dtype=np.int64,
        )

    async def similar_candidates(
        self,
        memory_id: str,
        among: Sequence[str],
        viewer: Viewer,
        filters: Filters,
        now: datetime,
        centred: bool = False,
    ) -> list[Candidate]:
        if not among:
            return []

        def op(conn: sqlite3.Connection) -> list[Candidate]:
            self._sync_index(conn)
            if self._index is None:
                return []
            query = _index_query(viewer, filters, now, self._prefiltered(conn, viewer, filters, now))
            return [Candidate(i, score) for i, score in self._index.similar(memory_id, among, query, centred)]

        return await self._run(op)

    async def text_candidates(
        self, terms: Sequence[str], viewer: Viewer, filters: Filters, now: datetime, k: int
    ) -> list[Candidate]:
        if not terms:
            return []

        def op(conn: sqlite3.Connection) -> list[Candidate]:
            kept = self._prune_terms(conn, terms)
            if not kept:
                return []
            # Each term becomes an FTS5 string literal, so no query syntax reaches MATCH.
            match = " OR ".join('"' + t.replace('"', '""') + '"' for t in kept)
            where, params = sql.where(viewer, filters, now)
            rows = conn.execute(
                "SELECT m.id, bm25(memories_fts) AS rank FROM memories_fts "
                "JOIN memories m ON m.rowid = memories_fts.rowid "
                f"WHERE memories_fts MATCH ? AND {where} ORDER BY rank LIMIT ?",
                [match, *params, k],
            ).fetchall()
            return [Candidate(r[0], -float(r[1])) for r in rows]

        return await self._run(lambda conn: self._full_text(conn, lambda: op(conn)))

    async def rarest_term_count(self, terms: Sequence[str]) -> int | None:
        def op(conn: sqlite3.Connection) -> int | None:
            counts = [n for n in self._document_counts(conn, terms).values() if n > 0]
            return min(counts) if counts else None

        return await self._run(lambda conn: self._full_text(conn, lambda: op(conn)))

    def _prune_terms(self, conn: sqlite3.Connection, terms: Sequence[str]) -> list[str]:
        return prune_terms(self._document_counts(conn, terms))

    def _document_counts(self, conn: sqlite3.Connection, terms: Sequence[str]) -> dict[str, int]:
        """Memories holding each term, from the fts5vocab table, cached until the index grows by
        a tenth (counting a common term walks its whole posting list)."""
        head = int(conn.execute("SELECT value FROM counters WHERE name = 'seq'").fetchone()[0])
        if head > self._df_head * 1.1 + 1000:
            self._df_cache.clear()
            self._df_head = head
        for term in terms:
            if term not in self._df_cache:
                row = conn.execute("SELECT doc FROM memories_fts_vocab WHERE term = ?", (term,)).fetchone()
                self._df_cache[term] = 0 if row is None else int(row[0])
        return {t: self._df_cache[t] for t in terms}

    async def expired_turns(self, now: datetime, limit: int) -> list[Memory]:
        def op(conn: sqlite3.Connection) -> list[Memory]:
            rows = conn.execute(
                f"SELECT {sql.COLUMNS} FROM memories WHERE expires_at <= ? AND thread_id IS NOT NULL "
                "AND tombstone = 0 AND encrypted = 0 LIMIT ?",
                (now.timestamp(), limit),
            ).fetchall()
            return [sql.memory_of(r) for r in rows]

        return await self._run(op)

    async def thread_after(self, thread_id: str, owner: str, after_hlc: int, turns: int) -> list[Memory]:
        return await self._thread_turns(thread_id, owner, after_hlc, turns, later=True)

    async def _thread_turns(
        self, thread_id: str, owner: str, hlc: int, turns: int, later: bool
    ) -> list[Memory]:
        """The owner's ``turns`` plaintext turns of a thread nearest ``hlc``, after it or before it,
        oldest first."""
        compare, order = (">", "ASC") if later else ("<", "DESC")

        def op(conn: sqlite3.Connection) -> list[Memory]:
            rows = conn.execute(
                f"SELECT {sql.COLUMNS} FROM memories WHERE thread_id = ? AND owner = ? AND hlc {compare} ? "
                f"AND tombstone = 0 AND encrypted = 0 ORDER BY hlc {order} LIMIT ?",
                (thread_id, owner, hlc, turns),
            ).fetchall()
            return [sql.memory_of(r) for r in (rows if later else reversed(rows))]

        return await self._run(op)

    async def reindex(self, texts: Sequence[tuple[str, str | None]], erase_traces: bool = True) -> None:
        def op(conn: sqlite3.Connection) -> None:
            def body() -> None:
                # Out of the index, then back in: the memories_fts triggers fire one at a time (an
                # UPDATE from text to text would run both in an order FTS5 cannot follow).
                ids = [(memory_id,) for memory_id, _ in texts]
                conn.executemany("UPDATE memories SET index_text = NULL WHERE id = ?", ids)
                rows = [(text, memory_id) for memory_id, text in texts if text is not None]
                conn.executemany("UPDATE memories SET index_text = ? WHERE id = ?", rows)

            self._transaction(conn, body)
            if erase_traces:
                self._erase_traces(conn)  # the old entries' terms leave the index and the disk
            self._df_cache.clear()  # term counts changed

        await self._run(op)

    async def thread_context(self, thread_id: str, owner: str, before_hlc: int, turns: int) -> list[Memory]:
        return await self._thread_turns(thread_id, owner, before_hlc, turns, later=False)

    async def changes_since(self, seq: int, limit: int) -> list[Memory]:
        def op(conn: sqlite3.Connection) -> list[Memory]:
            rows = conn.execute(
                f"SELECT {sql.COLUMNS} FROM memories WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
            ).fetchall()
            return [sql.memory_of(r) for r in rows]

        return await self._run(op)

    async def scan(self, batch: int) -> AsyncIterator[list[tuple[Memory, Vector | None]]]:
        # Pages by id, not seq: re-embedding bumps the seq of rows it has already seen.
        after = ""
        while True:

            def op(conn: sqlite3.Connection, after: str = after) -> list[tuple[Memory, Vector | None]]:
                rows = conn.execute(
                    f"SELECT {sql.COLUMNS}, embedding FROM memories WHERE id > ? ORDER BY id LIMIT ?",
                    (after, batch),
                ).fetchall()
                return [
                    (
                        sql.memory_of(r),
                        None
                        if r["embedding"] is None
                        else np.frombuffer(r["embedding"], dtype=np.float32).copy(),
                    )
                    for r in rows
                ]

            rows = await self._run(op)
            if not rows:
                return
            yield rows
            after = rows[-1][0].id

    async def count(self) -> int:
        return await self._run(
            lambda conn: int(conn.execute("SELECT count(*) FROM memories WHERE tombstone = 0").fetchone()[0])
        )


def _index_query(
    viewer: Viewer, filters: Filters, now: datetime, allowed: NDArray[np.int64] | None
) -> IndexQuery:
    return IndexQuery(
        viewer=viewer.principal_id,
        zones=None if filters.zones is None else [z.value for z in filters.zones],
        kinds=filters.kinds,
        owner=filters.owner,
        since=sql.ts(filters.since),
        until=sql.ts(filters.until),
        include_invalid=filters.include_invalid,
        now=now.timestamp(),
        allowed_rowids=allowed,
    )
