"""Memories: records, embeddings, full-text entries, and the reads search is built from."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray
from psycopg import AsyncConnection

from noosphere.memory.model import Filters, Memory
from noosphere.memory.ranking import POSTINGS_BUDGET, prune_terms
from noosphere.store.contract import (
    Candidate,
    EmbedderInfo,
    NewRecord,
    Vector,
    Viewer,
)
from noosphere.store.postgres import sql
from noosphere.store.postgres.base import PostgresBase
from noosphere.store.postgres.sql import Row
from noosphere.store.vector_centre import RESCORE_DEPTH, VectorSums

# Make memories tombstones: no content, tags, vector or full-text entry; a new version.
ERASE = (
    "UPDATE memories SET content = '', index_text = NULL, embedding = NULL, tags = '{}', "
    "metadata = '{}', tombstone = true, hlc = %s, invalid_at = %s, seal = %s, "
    "seq = nextval('memory_seq') WHERE id = ANY(%s) AND NOT tombstone"
)


class PostgresMemories(PostgresBase):
    async def _opened(self) -> None:
        await super()._opened()
        info = await self.embedder_info()
        self._dimension = None if info is None else info.dimension

    async def embedder_info(self) -> EmbedderInfo | None:
        async with self._connection() as conn:
            row = await (await conn.execute("SELECT value FROM meta WHERE key = 'embedder'")).fetchone()
        if row is None:
            return None
        data = json.loads(row["value"])
        return EmbedderInfo(model_id=data["model_id"], dimension=int(data["dimension"]))

    async def index_format(self) -> str | None:
        async with self._connection() as conn:
            row = await (await conn.execute("SELECT value FROM meta WHERE key = 'index_format'")).fetchone()
        return None if row is None else str(row["value"])

    async def set_index_format(self, value: str) -> None:
        async with self._connection() as conn:
            await conn.execute(
                "INSERT INTO meta (key, value) VALUES ('index_format', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (value,),
            )

    async def set_embedder_info(self, info: EmbedderInfo) -> None:
        dim = int(info.dimension)
        async with self._connection() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO meta (key, value) VALUES ('embedder', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (json.dumps({"model_id": info.model_id, "dimension": dim}),),
            )
            await conn.execute("DROP INDEX IF EXISTS memories_embedding_hnsw")
            other = await conn.execute(
                "SELECT 1 FROM memories WHERE embedding IS NOT NULL AND vector_dims(embedding) <> %s LIMIT 1",
                (dim,),
            )
            if await other.fetchone() is not None:
                # Mid re-embedding: vectors of the old model remain; the index is built at the end.
                self._dimension = dim
                self._sums = None
                return
            await conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
            await conn.execute(
                f"CREATE INDEX memories_embedding_hnsw ON memories USING hnsw "  # dim is an int
                f"((embedding::vector({dim})) vector_cosine_ops) WHERE embedding IS NOT NULL"
            )
            await conn.execute("ANALYZE memories")  # fresh statistics, so the planner uses it
        self._dimension = dim
        self._sums = None

    async def write(
        self, records: Sequence[NewRecord], invalidate: Sequence[tuple[str, datetime]]
    ) -> list[Memory]:
        # A constant number of round trips per batch: lock the batch's dedup keys, find the live
        # duplicates, reserve sequence numbers, insert everything with one INSERT ... unnest.
        async with self._connection() as conn, conn.transaction():
            for memory_id, at in invalidate:
                await conn.execute(
                    "UPDATE memories SET invalid_at = %s, seq = nextval('memory_seq') "
                    "WHERE id = %s AND invalid_at IS NULL",
                    (at, memory_id),
                )
            if not records:
                return []
            keys = [sql.dedup_key(r.memory) for r in records]
            # Serialise writers of the same content so two sessions cannot both insert it.
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) "
                "FROM unnest(%s::text[]) AS k ORDER BY k",
                (sorted(set(keys)),),
            )
            cur = await conn.execute(
                f"SELECT {sql.COLUMNS} FROM memories WHERE NOT tombstone AND invalid_at IS NULL AND "
                "(owner, zone, content_hash) IN "
                "(SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]))",
                (
                    [r.memory.owner for r in records],
                    [r.memory.zone.value for r in records],
                    [r.memory.content_hash for r in records],
                ),
            )
            existing = {sql.dedup_key(m): m for m in map(sql.memory_of, await cur.fetchall())}
            fresh: dict[str, NewRecord] = {}
            for record, key in zip(records, keys, strict=True):
                if key not in existing and key not in fresh:
                    fresh[key] = record
            if fresh:
                existing.update(await self._insert(conn, list(fresh.items())))
            return [existing[key] for key in keys]

    @staticmethod
    async def _insert(conn: AsyncConnection[Row], items: list[tuple[str, NewRecord]]) -> dict[str, Memory]:
        cur = await conn.execute(
            "SELECT nextval('memory_seq') AS seq FROM generate_series(1, %s)", (len(items),)
        )
        seqs = sorted(int(r["seq"]) for r in await cur.fetchall())
        rows = [
            (r.memory.model_copy(update={"seq": seq}), r) for (_, r), seq in zip(items, seqs, strict=True)
        ]

        def column(get: Callable[[Memory, NewRecord], Any]) -> list[Any]:
            return [get(m, r) for m, r in rows]

        await conn.execute(
            "INSERT INTO memories (id, seq, zone, owner, kind, content, index_text, tags, metadata, "
            "content_hash, importance, created_at, valid_at, invalid_at, expires_at, supersedes, "
            "thread_id, embedding, embed_model, encrypted, hlc, origin, tombstone) "
            "SELECT t.id, t.seq, t.zone, t.owner, t.kind, t.content, t.index_text, "
            "ARRAY(SELECT jsonb_array_elements_text(t.tags::jsonb)), t.metadata::jsonb, t.content_hash, "
            "t.importance, t.created_at, t.valid_at, t.invalid_at, t.expires_at, t.supersedes, "
            "t.thread_id, t.embedding::vector, t.embed_model, t.encrypted, t.hlc, t.origin, t.tombstone "
            "FROM unnest(%s::text[], %s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[], "
            "%s::text[], %s::text[], %s::text[], %s::text[], %s::real[], %s::timestamptz[], "
            "%s::timestamptz[], %s::timestamptz[], %s::timestamptz[], %s::text[], %s::text[], "
            "%s::text[], %s::text[], %s::boolean[], %s::bigint[], %s::text[], %s::boolean[]) "
            "AS t(id, seq, zone, owner, kind, content, index_text, tags, metadata, content_hash, "
            "importance, created_at, valid_at, invalid_at, expires_at, supersedes, thread_id, "
            "embedding, embed_model, encrypted, hlc, origin, tombstone)",
            (
                column(lambda m, r: m.id),
                column(lambda m, r: m.seq),
                column(lambda m, r: m.zone.value),
                column(lambda m, r: m.owner),
                column(lambda m, r: m.kind),
                column(lambda m, r: m.content),
                column(lambda m, r: r.index_text),
                column(lambda m, r: json.dumps(m.tags)),
                column(lambda m, r: json.dumps(m.metadata)),
                column(lambda m, r: m.content_hash),
                column(lambda m, r: m.importance),
                column(lambda m, r: m.created_at),
                column(lambda m, r: m.valid_at),
                column(lambda m, r: m.invalid_at),
                column(lambda m, r: m.expires_at),
                column(lambda m, r: m.supersedes),
                column(lambda m, r: m.thread_id),
                column(lambda m, r: None if r.embedding is None else sql.vector_literal(r.embedding)),
                column(lambda m, r: m.embed_model),
                column(lambda m, r: m.encrypted),
                column(lambda m, r: m.hlc),
                column(lambda m, r: m.origin),
                column(lambda m, r: m.tombstone),
            ),
        )
        return {key: memory for (key, _), (memory, _) in zip(items, rows, strict=True)}

    async def _delete_where(self, where: str, params: Sequence[Any]) -> int:
        async with self._connection() as conn:
            cur = await conn.execute(f"DELETE FROM memories WHERE {where}", params)
            count = cur.rowcount
            if count:
                self._sums = None
                await conn.execute("VACUUM memories")
        return count

    async def delete(self, ids: Sequence[str]) -> int:
        return await self._delete_where("id = ANY(%s)", [list(ids)]) if ids else 0

    async def tombstone(self, ids: Sequence[str], hlc: int, at: datetime) -> int:
        async with self._connection() as conn:
            cur = await conn.execute(ERASE, (hlc, at, None, list(ids)))
            count = cur.rowcount
            if count:
                self._sums = None
                await conn.execute("VACUUM memories")
        return count

    async def delete_owner(self, owner: str) -> int:
        return await self._delete_where("owner = %s", [owner])

    async def purge_expired(self, now: datetime) -> int:
        return await self._delete_where("expires_at IS NOT NULL AND expires_at <= %s", [now])

    async def latest_stamp(self) -> int:
        async with self._connection() as conn:
            row = await (await conn.execute("SELECT coalesce(max(hlc), 0) AS hlc FROM memories")).fetchone()
        return 0 if row is None else int(row["hlc"])

    async def purge_tombstones(self, before: datetime) -> int:
        async with self._connection() as conn:
            # Peers that read the feed only below the last purged federated tombstone resync.
            await conn.execute(
                "UPDATE federation_state SET value = greatest(value, coalesce((SELECT max(seq) FROM "
                "memories WHERE zone = 'federated' AND tombstone AND invalid_at <= %s), 0)) "
                "WHERE name = 'horizon'",
                (before,),
            )
        return await self._delete_where("tombstone AND invalid_at <= %s", [before])

    async def set_embeddings(self, items: Sequence[tuple[str, Vector]], model_id: str) -> None:
        async with self._connection() as conn, conn.transaction():
            for memory_id, vector in items:
                await conn.execute(
                    "UPDATE memories SET embedding = %s::vector, embed_model = %s, "
                    "seq = nextval('memory_seq') WHERE id = %s",
                    (sql.vector_literal(vector), model_id, memory_id),
                )
        self._sums = None

    async def get(self, memory_id: str, viewer: Viewer) -> Memory | None:
        condition, params = sql.where(viewer, Filters(include_invalid=True), datetime.now(UTC))
        query = f"SELECT {sql.COLUMNS} FROM memories m WHERE m.id = %s AND {condition}"
        async with self._connection() as conn:
            row = await (await conn.execute(query, [memory_id, *params])).fetchone()
        return None if row is None else sql.memory_of(row)

    async def successors(self, memory_id: str, viewer: Viewer) -> list[Memory]:
        condition, params = sql.where(viewer, Filters(include_invalid=True), datetime.now(UTC))
        query = f"SELECT {sql.COLUMNS} FROM memories m WHERE m.supersedes = %s AND {condition} ORDER BY m.hlc"
        async with self._connection() as conn:
            rows = await (await conn.execute(query, [memory_id, *params])).fetchall()
        return [sql.memory_of(row) for row in rows]

    async def fetch(
        self, ids: Sequence[str], viewer: Viewer, filters: Filters, now: datetime
    ) -> list[Memory]:
        if not ids:
            return []
        where, params = sql.where(viewer, filters, now)
        async with self._connection() as conn:
            cur = await conn.execute(
                f"SELECT {sql.COLUMNS} FROM memories m WHERE m.id = ANY(%s) AND {where}",
                [list(ids), *params],
            )
            return [sql.memory_of(r) for r in await cur.fetchall()]

    async def list_memories(
        self, viewer: Viewer, filters: Filters, now: datetime, limit: int, after_seq: int | None
    ) -> list[Memory]:
        where, params = sql.where(viewer, filters, now)
        if after_seq is not None:
            where += " AND m.seq > %s"
            params.append(after_seq)
        async with self._connection() as conn:
            cur = await conn.execute(
                f"SELECT {sql.COLUMNS} FROM memories m WHERE {where} ORDER BY m.seq LIMIT %s",
                [*params, limit],
            )
            return [sql.memory_of(r) for r in await cur.fetchall()]

    async def vector_candidates(
        self, vector: Vector, viewer: Viewer, filters: Filters, now: datetime, k: int, centred: bool = False
    ) -> list[Candidate]:
        if self._dimension is None:
            return []
        dim = self._dimension
        where, params = sql.where(viewer, filters, now)
        literal = sql.vector_literal(vector)
        nearest = (
            f"SELECT m.id, m.valid_at, (m.embedding::vector({dim})) AS e FROM memories m "
            f"WHERE m.embedding IS NOT NULL AND {where} "
            f"ORDER BY (m.embedding::vector({dim})) <=> %s::vector({dim}) LIMIT %s"
        )
        async with self._connection() as conn:
            if centred:
                centre = await self._centre(conn, dim, viewer, filters)
                # The nearest by plain cosine (from the HNSW index), re-ranked from the centre.
                query = f"SELECT id, valid_at, (e - %s::vector({dim})) <=> %s::vector({dim}) AS distance "
                query += f"FROM ({nearest}) nearest ORDER BY distance LIMIT %s"
                args: list[Any] = [sql.vector_literal(centre), sql.vector_literal(vector - centre)]
                args += [*params, literal, k * RESCORE_DEPTH, k]
            else:
                query = f"SELECT id, valid_at, e <=> %s::vector({dim}) AS distance FROM ({nearest}) nearest"
                args = [literal, *params, literal, k]
            rows = await (await conn.execute(query, args)).fetchall()
        # relaxed_order may return slightly out-of-order rows; order them exactly.
        return sorted(
            (Candidate(r["id"], 1.0 - float(r["distance"]), r["valid_at"]) for r in rows),
            key=lambda c: c.score,
            reverse=True,
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
        if self._dimension is None or not among:
            return []
        dim = self._dimension
        where, params = sql.where(viewer, filters, now)
        async with self._connection() as conn:
            centre = await self._centre(conn, dim, viewer, filters) if centred else np.zeros(dim, np.float32)
            literal = sql.vector_literal(centre)
            cur = await conn.execute(
                f"SELECT m.id, (m.embedding::vector({dim}) - %s::vector({dim})) <=> "
                f"(source.e - %s::vector({dim})) AS distance FROM memories m, "
                f"(SELECT m.embedding::vector({dim}) AS e FROM memories m WHERE m.id = %s AND "
                f"m.embedding IS NOT NULL AND vector_dims(m.embedding) = %s AND {where}) source "
                f"WHERE m.id = ANY(%s) AND m.id <> %s AND m.embedding IS NOT NULL "
                f"AND vector_dims(m.embedding) = %s AND {where}",
                [literal, literal, memory_id, dim, *params, list(among), memory_id, dim, *params],
            )
            rows = await cur.fetchall()
        return sorted(
            (Candidate(r["id"], 1.0 - float(r["distance"])) for r in rows),
            key=lambda c: c.score,
            reverse=True,
        )

    async def _centre(
        self, conn: AsyncConnection[Row], dim: int, viewer: Viewer, filters: Filters
    ) -> NDArray[np.float32]:
        """The centre of the collections a search by ``viewer`` under ``filters`` covers."""
        zones = None if filters.zones is None else [z.value for z in filters.zones]
        return (await self._vector_sums(conn, dim)).centre(viewer.principal_id, zones, filters.owner)

    async def _vector_sums(self, conn: AsyncConnection[Row], dim: int) -> VectorSums:
        """Each collection's embedding sum and count, computed again once the store has grown by a
        tenth or this process deleted or re-embedded memories (a centre is a mean of many: a few
        recent writes barely move it)."""
        head = await self._sequence_head(conn)
        if self._sums is None or self._sums.dimension != dim or head > self._sums_head * 1.1:
            sums = VectorSums(dim)
            cur = await conn.execute(
                f"SELECT owner, zone, sum(embedding::vector({dim}))::text AS total, count(*) AS n "
                "FROM memories WHERE embedding IS NOT NULL AND NOT tombstone "
                "AND vector_dims(embedding) = %s GROUP BY owner, zone",
                (dim,),
            )
            for row in await cur.fetchall():
                total = sql.parse_vector(row["total"])
                if total is not None:
                    sums.set(row["owner"], row["zone"], total, int(row["n"]))
            self._sums, self._sums_head = sums, head
        return self._sums

    async def text_candidates(
        self, terms: Sequence[str], viewer: Viewer, filters: Filters, now: datetime, k: int
    ) -> list[Candidate]:
        if not terms:
            return []
        where, params = sql.where(viewer, filters, now)
        async with self._connection() as conn:
            kept = await self._prune_terms(conn, terms)
            if not kept:
                return []
            query = " | ".join(sql.lexeme(t) for t in kept)
            cur = await conn.execute(
                "SELECT m.id, ts_rank_cd(m.tsv, q, 1) AS rank FROM memories m, "
                f"to_tsquery('simple', %s) q WHERE m.tsv @@ q AND {where} ORDER BY rank DESC LIMIT %s",
                [query, *params, k],
            )
            return [Candidate(r["id"], float(r["rank"])) for r in await cur.fetchall()]

    async def rarest_term_count(self, terms: Sequence[str]) -> int | None:
        async with self._connection() as conn:
            counts = [n for n in (await self._document_counts(conn, terms)).values() if n > 0]
        return min(counts) if counts else None

    async def _prune_terms(self, conn: AsyncConnection[Row], terms: Sequence[str]) -> list[str]:
        return prune_terms(await self._document_counts(conn, terms))

    async def _document_counts(self, conn: AsyncConnection[Row], terms: Sequence[str]) -> dict[str, int]:
        """Memories holding each term, from the GIN index, capped just above the pruning budget
        (an exact count of a common term would cost what pruning saves) and cached until the
        table grows by a tenth."""
        head = await self._sequence_head(conn)
        if head > self._df_head * 1.1 + 1000:
            self._df_cache.clear()
            self._df_head = head
        missing = [t for t in terms if t not in self._df_cache]
        if missing:
            cur = await conn.execute(
                "SELECT t.term, (SELECT count(*) FROM (SELECT 1 FROM memories "
                "WHERE tsv @@ to_tsquery('simple', t.lexeme) LIMIT %s) capped) AS n "
                "FROM unnest(%s::text[], %s::text[]) AS t(term, lexeme)",
                (POSTINGS_BUDGET + 1, missing, [sql.lexeme(t) for t in missing]),
            )
            for row in await cur.fetchall():
                self._df_cache[row["term"]] = int(row["n"])
        return {t: self._df_cache[t] for t in terms}

    @staticmethod
    async def _sequence_head(conn: AsyncConnection[Row]) -> int:
        """The last memory sequence number handed out: grows with every write."""
        row = await (await conn.execute("SELECT last_value AS v FROM memory_seq")).fetchone()
        return int((row or {"v": 0})["v"])

    async def expired_turns(self, now: datetime, limit: int) -> list[Memory]:
        async with self._connection() as conn:
            cur = await conn.execute(
                f"SELECT {sql.COLUMNS} FROM memories WHERE expires_at <= %s AND thread_id IS NOT NULL "
                "AND NOT tombstone AND NOT encrypted LIMIT %s",
                (now, limit),
            )
            return [sql.memory_of(r) for r in await cur.fetchall()]

    async def thread_after(self, thread_id: str, owner: str, after_hlc: int, turns: int) -> list[Memory]:
        return await self._thread_turns(thread_id, owner, after_hlc, turns, later=True)

    async def _thread_turns(
        self, thread_id: str, owner: str, hlc: int, turns: int, later: bool
    ) -> list[Memory]:
        """The owner's ``turns`` plaintext turns of a thread nearest ``hlc``, after it or before it,
        oldest first."""
        compare, order = (">", "ASC") if later else ("<", "DESC")
        async with self._connection() as conn:
            cur = await conn.execute(
                f"SELECT {sql.COLUMNS} FROM memories "
                f"WHERE thread_id = %s AND owner = %s AND hlc {compare} %s AND NOT tombstone "
                f"AND NOT encrypted ORDER BY hlc {order} LIMIT %s",
                (thread_id, owner, hlc, turns),
            )
            rows = await cur.fetchall()
        return [sql.memory_of(r) for r in (rows if later else reversed(rows))]

    async def reindex(self, texts: Sequence[tuple[str, str | None]], erase_traces: bool = True) -> None:
        async with self._connection() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.executemany(  # tsv is generated from index_text
                "UPDATE memories SET index_text = %s WHERE id = %s", [(t, i) for i, t in texts]
            )
        self._df_cache.clear()  # term counts changed

    async def thread_context(self, thread_id: str, owner: str, before_hlc: int, turns: int) -> list[Memory]:
        return await self._thread_turns(thread_id, owner, before_hlc, turns, later=False)

    async def changes_since(self, seq: int, limit: int) -> list[Memory]:
        async with self._connection() as conn:
            cur = await conn.execute(
                f"SELECT {sql.COLUMNS} FROM memories WHERE seq > %s ORDER BY seq LIMIT %s",
                (seq, limit),
            )
            return [sql.memory_of(r) for r in await cur.fetchall()]

    async def scan(self, batch: int) -> AsyncIterator[list[tuple[Memory, Vector | None]]]:
        after = ""
        while True:
            async with self._connection() as conn:
                cur = await conn.execute(
                    f"SELECT {sql.COLUMNS}, embedding::text AS embedding_text FROM memories "
                    "WHERE id > %s ORDER BY id LIMIT %s",
                    (after, batch),
                )
                rows = await cur.fetchall()
            if not rows:
                return
            yield [(sql.memory_of(r), sql.parse_vector(r["embedding_text"])) for r in rows]
            after = rows[-1]["id"]

    async def count(self) -> int:
        async with self._connection() as conn:
            row = await (
                await conn.execute("SELECT count(*) AS n FROM memories WHERE NOT tombstone")
            ).fetchone()
        return int(row["n"]) if row else 0
