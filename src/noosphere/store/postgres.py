"""PostgreSQL + pgvector backend: HNSW (cosine) for vectors, tsvector/GIN for full text.

For several node processes on one database, or data beyond one machine's memory. Filtered vector
queries use pgvector's iterative index scans so a selective filter does not starve the result.
Forgetting deletes rows and index entries and vacuums the table; PostgreSQL may keep old bytes in
its WAL until the next checkpoint recycles it (see docs/memory.md).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from noosphere.errors import StorageUnavailable
from noosphere.memory.model import Filters, Memory, Zone
from noosphere.memory.ranking import POSTINGS_BUDGET, prune_terms
from noosphere.store import postgres_agents as agents_sql
from noosphere.store import postgres_approvals as approvals_sql
from noosphere.store import postgres_audit as audit
from noosphere.store import postgres_jobs as jobs_sql
from noosphere.store import postgres_ledger as ledger
from noosphere.store import postgres_mailbox as mail
from noosphere.store.contract import (
    ApiKeyRecord,
    ApprovalRecord,
    AuditEntry,
    Candidate,
    Charge,
    ClaimedMail,
    EmbedderInfo,
    JobRunRecord,
    MailCounts,
    MailRow,
    NewRecord,
    PrincipalRecord,
    TaskRecord,
    TreeHead,
    UsageSummary,
    Vector,
    Viewer,
)
from noosphere.store.pgserver import EmbeddedPostgres

Row = dict[str, Any]
CONNECT_TIMEOUT_S = 5.0  # waiting longer for a pooled connection: the server is not there
_COLUMNS = (
    "id, seq, zone, owner, kind, content, tags, metadata, content_hash, importance, created_at, "
    "valid_at, invalid_at, expires_at, supersedes, thread_id, embed_model, encrypted, hlc, origin, "
    "tombstone"
)


def _memory(row: Row) -> Memory:
    return Memory(
        id=row["id"],
        seq=row["seq"],
        zone=Zone(row["zone"]),
        owner=row["owner"],
        kind=row["kind"],
        content=row["content"],
        tags=list(row["tags"]),
        metadata=row["metadata"],
        content_hash=row["content_hash"],
        importance=row["importance"],
        created_at=row["created_at"],
        valid_at=row["valid_at"],
        invalid_at=row["invalid_at"],
        expires_at=row["expires_at"],
        supersedes=row["supersedes"],
        thread_id=row["thread_id"],
        embed_model=row["embed_model"],
        encrypted=row["encrypted"],
        hlc=row["hlc"],
        origin=row["origin"],
        tombstone=row["tombstone"],
    )


def _principal(row: Row) -> PrincipalRecord:
    return PrincipalRecord(
        id=row["id"],
        kind=row["kind"],
        name=row["name"],
        level=row["level"],
        token_hash=row["token_hash"],
        key_salt=bytes(row["key_salt"]),
        created_at=row["created_at"],
        disabled=row["disabled"],
        capture=row["capture"],
        models=None if row["models"] is None else tuple(row["models"]),
    )


def _vector_literal(vector: Vector) -> str:
    return "[" + ",".join(f"{x:.8g}" for x in vector.tolist()) + "]"


def _parse_vector(text: str | None) -> Vector | None:
    if text is None:
        return None
    return np.asarray(json.loads(text), dtype=np.float32)


async def _configure(conn: AsyncConnection[Row]) -> None:
    # Filtered vector queries keep scanning the HNSW graph until the LIMIT is filled.
    await conn.execute("SET hnsw.iterative_scan = relaxed_order")
    await conn.execute("SET hnsw.ef_search = 100")
    # Index pages of a memory store live in RAM or on SSD: random reads are cheap, so let the
    # planner use the GIN and HNSW indexes at moderate selectivity (PostgreSQL assumes disks).
    await conn.execute("SET random_page_cost = 1.1")


def _dedup_key(memory: Memory) -> str:
    return f"{memory.owner}|{memory.zone.value}|{memory.content_hash}"


def _lexeme(term: str) -> str:
    """A tsquery lexeme literal: quoted, inner quotes and backslashes escaped, no operators."""
    return "'" + term.replace("\\", "\\\\").replace("'", "''") + "'"


def _where(viewer: Viewer, filters: Filters, now: datetime) -> tuple[str, list[Any]]:
    clauses = ["NOT m.tombstone", "(m.expires_at IS NULL OR m.expires_at > %s)"]
    params: list[Any] = [now]
    if not filters.include_invalid:
        clauses.append("m.invalid_at IS NULL")
    if viewer.principal_id is not None:
        clauses.append("(m.zone <> 'private' OR m.owner = %s)")
        params.append(viewer.principal_id)
    if filters.zones is not None:
        clauses.append("m.zone = ANY(%s)")
        params.append([z.value for z in filters.zones])
    if filters.kinds is not None:
        clauses.append("m.kind = ANY(%s)")
        params.append(list(filters.kinds))
    if filters.owner is not None:
        clauses.append("m.owner = %s")
        params.append(filters.owner)
    if filters.since is not None:
        clauses.append("m.valid_at >= %s")
        params.append(filters.since)
    if filters.until is not None:
        clauses.append("m.valid_at < %s")
        params.append(filters.until)
    if filters.thread_id is not None:
        clauses.append("m.thread_id = %s")
        params.append(filters.thread_id)
    if filters.tags:
        clauses.append("m.tags @> %s::text[]")
        params.append(list(filters.tags))
    for key, value in (filters.metadata or {}).items():
        if value is None:
            clauses.append("m.metadata -> %s IS NULL OR m.metadata -> %s = 'null'::jsonb")
            params.extend([key, key])
        else:
            clauses.append("m.metadata @> %s")
            params.append(Jsonb({key: value}))
    # Each condition in its own parentheses: an OR inside one can never escape the visibility rule.
    return " AND ".join(f"({c})" for c in clauses), params


class PostgresStore:
    def __init__(self, url: str | None, embedded_dir: Path | None = None) -> None:
        self._url = url
        self._embedded = EmbeddedPostgres(embedded_dir) if url is None and embedded_dir else None
        self._pool: AsyncConnectionPool[AsyncConnection[Row]] | None = None
        self._dimension: int | None = None
        self._df_cache: dict[str, int] = {}
        self._df_head = 0

    @property
    def pool(self) -> AsyncConnectionPool[AsyncConnection[Row]]:
        if self._pool is None:
            raise StorageUnavailable("the PostgreSQL store is not open")
        return self._pool

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[AsyncConnection[Row]]:
        """A pooled connection; a server that is down, restarting or unreachable is
        ``StorageUnavailable`` (503 with Retry-After), and the pool replaces broken connections
        when it comes back, so the node needs no restart."""
        try:
            async with self.pool.connection(timeout=CONNECT_TIMEOUT_S) as conn:
                yield conn
        except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as exc:
            raise StorageUnavailable(f"PostgreSQL is unavailable: {exc}", retry_after=2) from exc

    async def open(self) -> None:
        url = self._url or (self._embedded.start() if self._embedded else None)
        if url is None:
            raise StorageUnavailable("storage.postgres_url is not set")
        pool: AsyncConnectionPool[AsyncConnection[Row]] = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=8,
            open=False,
            kwargs={"autocommit": True, "row_factory": dict_row},
            configure=_configure,
            check=AsyncConnectionPool.check_connection,  # a connection from before a restart is replaced
        )
        try:
            await pool.open(wait=True, timeout=30)
        except Exception as exc:
            raise StorageUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc
        self._pool = pool
        await self._migrate()
        info = await self.embedder_info()
        self._dimension = None if info is None else info.dimension

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        if self._embedded is not None:
            self._embedded.stop()

    async def _migrate(self) -> None:
        folder = resources.files("noosphere.store") / "migrations" / "postgres"
        scripts = sorted((p for p in folder.iterdir() if p.name.endswith(".sql")), key=lambda p: p.name)
        async with self._connection() as conn:
            await conn.execute("SELECT pg_advisory_lock(7263001)")  # one migrator at a time
            try:
                await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
                row = await (await conn.execute("SELECT max(version) AS v FROM schema_version")).fetchone()
                current = (row or {}).get("v") or 0
                for script in scripts:
                    version = int(script.name.split("_", 1)[0])
                    if version <= current:
                        continue
                    async with conn.transaction():
                        await conn.execute(script.read_text(encoding="utf-8"))
                        await conn.execute("INSERT INTO schema_version VALUES (%s)", (version,))
            finally:
                await conn.execute("SELECT pg_advisory_unlock(7263001)")

    # -- metadata ------------------------------------------------------------------------------
    async def embedder_info(self) -> EmbedderInfo | None:
        async with self._connection() as conn:
            row = await (await conn.execute("SELECT value FROM meta WHERE key = 'embedder'")).fetchone()
        if row is None:
            return None
        data = json.loads(row["value"])
        return EmbedderInfo(model_id=data["model_id"], dimension=int(data["dimension"]))

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
                return
            await conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
            await conn.execute(
                f"CREATE INDEX memories_embedding_hnsw ON memories USING hnsw "  # dim is an int
                f"((embedding::vector({dim})) vector_cosine_ops) WHERE embedding IS NOT NULL"
            )
            await conn.execute("ANALYZE memories")  # fresh statistics, so the planner uses it
        self._dimension = dim

    # -- principals ----------------------------------------------------------------------------
    async def forget_principal(self, principal_id: str, mailbox: str) -> int:
        removed = 0
        async with self._connection() as conn, conn.transaction():
            for statement, value in (
                ("DELETE FROM approval_grants WHERE requester = %s", mailbox),
                ("DELETE FROM mailbox WHERE mailbox = %s", mailbox),
                ("DELETE FROM subscriptions WHERE subscriber = %s", mailbox),
                ("UPDATE api_keys SET revoked = true WHERE user_id = %s AND NOT revoked", principal_id),
                ("DELETE FROM conversation_keys WHERE principal_id = %s", principal_id),
            ):
                removed += (await conn.execute(statement, (value,))).rowcount
        return removed

    async def put_principal(self, record: PrincipalRecord) -> None:
        async with self._connection() as conn:
            await conn.execute(
                "INSERT INTO principals (id, kind, name, level, token_hash, key_salt, created_at, disabled, "
                "capture, models) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE "
                "SET kind = excluded.kind, name = excluded.name, level = excluded.level, "
                "token_hash = excluded.token_hash, key_salt = excluded.key_salt, "
                "disabled = excluded.disabled, capture = excluded.capture, models = excluded.models",
                (
                    record.id,
                    record.kind,
                    record.name,
                    record.level,
                    record.token_hash,
                    record.key_salt,
                    record.created_at,
                    record.disabled,
                    record.capture,
                    None if record.models is None else list(record.models),
                ),
            )

    async def _one_principal(self, where: str, value: str) -> PrincipalRecord | None:
        async with self._connection() as conn:
            row = await (
                await conn.execute(f"SELECT * FROM principals WHERE {where} = %s", (value,))
            ).fetchone()
        return None if row is None else _principal(row)

    async def principal_by_token_hash(self, token_hash: str) -> PrincipalRecord | None:
        return await self._one_principal("token_hash", token_hash)

    async def principal(self, principal_id: str) -> PrincipalRecord | None:
        return await self._one_principal("id", principal_id)

    async def principals(self, kind: str | None = None) -> list[PrincipalRecord]:
        async with self._connection() as conn:
            if kind is None:
                cur = await conn.execute("SELECT * FROM principals ORDER BY id")
            else:
                cur = await conn.execute("SELECT * FROM principals WHERE kind = %s ORDER BY id", (kind,))
            return [_principal(r) for r in await cur.fetchall()]

    async def delete_principal(self, principal_id: str) -> bool:
        async with self._connection() as conn:
            cur = await conn.execute("DELETE FROM principals WHERE id = %s", (principal_id,))
            return cur.rowcount > 0

    # -- API keys, usage and the ledger ---------------------------------------------------------
    async def put_api_key(self, record: ApiKeyRecord) -> None:
        async with self._connection() as conn:
            await ledger.put_api_key(conn, record)

    async def api_key_by_token_hash(self, token_hash: str) -> ApiKeyRecord | None:
        async with self._connection() as conn:
            return await ledger.api_key_by_token_hash(conn, token_hash)

    async def api_keys(self, user_id: str | None = None) -> list[ApiKeyRecord]:
        async with self._connection() as conn:
            return await ledger.api_keys(conn, user_id)

    async def revoke_api_key(self, key_id: str) -> bool:
        async with self._connection() as conn:
            return await ledger.revoke_api_key(conn, key_id)

    async def record_usage(self, batch: Sequence[Charge]) -> None:
        async with self._connection() as conn:
            await ledger.record_usage(conn, batch)

    async def balance(self, account: str, period: str = "total") -> float:
        async with self._connection() as conn:
            return await ledger.balance(conn, account, period)

    async def usage_summary(self, by: str, since: datetime | None) -> list[UsageSummary]:
        async with self._connection() as conn:
            return await ledger.usage_summary(conn, by, since)

    # -- audit log -----------------------------------------------------------------------------
    async def append_audit(self, entries: Sequence[tuple[str, bytes]]) -> int:
        async with self._connection() as conn:
            return await audit.append(conn, entries)

    async def audit_entries(self, start: int = 0, limit: int | None = None) -> list[AuditEntry]:
        async with self._connection() as conn:
            return await audit.entries(conn, start, limit)

    async def put_tree_head(self, head: TreeHead) -> None:
        async with self._connection() as conn:
            await audit.put_head(conn, head)

    async def tree_heads(self) -> list[TreeHead]:
        async with self._connection() as conn:
            return await audit.heads(conn)

    # -- conversation keys -----------------------------------------------------------------------
    async def conversation_key(self, principal_id: str) -> tuple[bytes, str] | None:
        async with self._connection() as conn:
            cur = await conn.execute(
                "SELECT salt, check_value FROM conversation_keys WHERE principal_id = %s", (principal_id,)
            )
            row = await cur.fetchone()
        return None if row is None else (bytes(row["salt"]), str(row["check_value"]))

    async def put_conversation_key(self, principal_id: str, salt: bytes, check: str, at: datetime) -> bool:
        async with self._connection() as conn:
            cur = await conn.execute(
                "INSERT INTO conversation_keys (principal_id, salt, check_value, created_at) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (principal_id) DO NOTHING",
                (principal_id, salt, check, at),
            )
            return cur.rowcount == 1

    async def delete_conversation_key(self, principal_id: str) -> bool:
        async with self._connection() as conn:
            cur = await conn.execute("DELETE FROM conversation_keys WHERE principal_id = %s", (principal_id,))
            return cur.rowcount == 1

    # -- approvals -----------------------------------------------------------------------------
    async def put_approval(self, record: ApprovalRecord) -> None:
        async with self._connection() as conn:
            await approvals_sql.put(conn, record)

    async def approval(self, approval_id: str) -> ApprovalRecord | None:
        async with self._connection() as conn:
            return await approvals_sql.get(conn, approval_id)

    async def approvals(self, status: str | None, limit: int) -> list[ApprovalRecord]:
        async with self._connection() as conn:
            return await approvals_sql.listing(conn, status, limit)

    async def settle_approval(
        self, approval_id: str, status: str, by: str, at: datetime, scope: str | None, note: str | None
    ) -> bool:
        async with self._connection() as conn:
            return await approvals_sql.settle(conn, approval_id, status, by, at, scope, note)

    async def due_approvals(self, now: datetime) -> list[ApprovalRecord]:
        async with self._connection() as conn:
            return await approvals_sql.due(conn, now)

    async def open_approval(self, requester: str, tool: str, args_digest: str) -> ApprovalRecord | None:
        async with self._connection() as conn:
            return await approvals_sql.open_for(conn, requester, tool, args_digest)

    async def use_approval(self, approval_id: str, at: datetime) -> bool:
        async with self._connection() as conn:
            return await approvals_sql.use(conn, approval_id, at)

    async def put_grant(
        self, requester: str, tool: str, subject: str | None, session: str | None, by: str, at: datetime
    ) -> None:
        async with self._connection() as conn:
            await approvals_sql.put_grant(conn, requester, tool, subject, session, by, at)

    async def has_grant(self, requester: str, tool: str, subject: str | None, session: str | None) -> bool:
        async with self._connection() as conn:
            return await approvals_sql.has_grant(conn, requester, tool, subject, session)

    # -- agents ---------------------------------------------------------------------------------
    async def put_agent_profile(self, name: str, profile: str, at: datetime) -> None:
        async with self._connection() as conn:
            await agents_sql.put_profile(conn, name, profile, at)

    async def agent_profiles(self, name: str | None = None) -> list[str]:
        async with self._connection() as conn:
            return await agents_sql.profiles(conn, name)

    async def delete_agent_profile(self, name: str) -> bool:
        async with self._connection() as conn:
            return await agents_sql.delete_profile(conn, name)

    async def put_task(self, record: TaskRecord) -> None:
        async with self._connection() as conn:
            await agents_sql.put_task(conn, record)

    async def task(self, task_id: str) -> TaskRecord | None:
        async with self._connection() as conn:
            return await agents_sql.get_task(conn, task_id)

    async def tasks(self, agent: str | None, limit: int) -> list[TaskRecord]:
        async with self._connection() as conn:
            return await agents_sql.tasks(conn, agent, limit)

    async def move_task(
        self, task_id: str, before: Sequence[str], status: str, result: str | None, at: datetime
    ) -> bool:
        async with self._connection() as conn:
            return await agents_sql.move_task(conn, task_id, before, status, result, at)

    async def lease_task(self, task_id: str, until: datetime) -> bool:
        async with self._connection() as conn:
            return await agents_sql.lease_task(conn, task_id, until)

    async def lapsed_tasks(self, now: datetime, limit: int) -> list[TaskRecord]:
        async with self._connection() as conn:
            return await agents_sql.lapsed_tasks(conn, now, limit)

    async def reclaim_task(
        self, task_id: str, lapsed_before: datetime, status: str, result: str | None, at: datetime
    ) -> bool:
        async with self._connection() as conn:
            return await agents_sql.reclaim_task(conn, task_id, lapsed_before, status, result, at)

    # -- scheduled jobs -------------------------------------------------------------------------
    async def claim_job_run(self, job: str, tick: str, node: str, at: datetime) -> bool:
        async with self._connection() as conn:
            return await jobs_sql.claim(conn, job, tick, node, at)

    async def finish_job_run(
        self, job: str, tick: str, outcome: str, detail: str | None, at: datetime
    ) -> None:
        async with self._connection() as conn:
            await jobs_sql.finish(conn, job, tick, outcome, detail, at)

    async def job_runs(self, job: str | None, limit: int) -> list[JobRunRecord]:
        async with self._connection() as conn:
            return await jobs_sql.runs(conn, job, limit)

    # -- message bus ---------------------------------------------------------------------------
    async def enqueue_mail(self, rows: Sequence[MailRow], now: float) -> list[bool]:
        if not rows:
            return []
        async with self._connection() as conn:
            return await mail.enqueue(conn, rows, now)

    async def claim_mail(
        self, mailbox: str, now: float, lease: float, limit: int, max_attempts: int
    ) -> list[ClaimedMail]:
        async with self._connection() as conn:
            return await mail.claim(conn, mailbox, now, lease, limit, max_attempts)

    async def ack_mail(self, mailbox: str, ids: Sequence[str], now: float) -> list[str]:
        async with self._connection() as conn:
            return await mail.ack(conn, mailbox, ids, now)

    async def release_mail(self, mailbox: str, ids: Sequence[str], visible_at: float, now: float) -> int:
        async with self._connection() as conn:
            return await mail.release(conn, mailbox, ids, visible_at, now)

    async def subscribe(self, subscriber: str, pattern: str) -> None:
        async with self._connection() as conn:
            await mail.subscribe(conn, subscriber, pattern)

    async def unsubscribe(self, subscriber: str, pattern: str) -> bool:
        async with self._connection() as conn:
            return await mail.unsubscribe(conn, subscriber, pattern)

    async def subscriptions(self, subscriber: str | None = None) -> list[tuple[str, str]]:
        async with self._connection() as conn:
            return await mail.subscriptions(conn, subscriber)

    async def mail_counts(self, mailbox: str | None, now: float) -> list[MailCounts]:
        async with self._connection() as conn:
            return await mail.counts(conn, mailbox, now)

    async def purge_mail(self, now: float, settled_before: float) -> int:
        async with self._connection() as conn:
            return await mail.purge(conn, now, settled_before)

    # -- writes --------------------------------------------------------------------------------
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
            keys = [_dedup_key(r.memory) for r in records]
            # Serialise writers of the same content so two sessions cannot both insert it.
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) "
                "FROM unnest(%s::text[]) AS k ORDER BY k",
                (sorted(set(keys)),),
            )
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM memories WHERE NOT tombstone AND invalid_at IS NULL AND "
                "(owner, zone, content_hash) IN "
                "(SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]))",
                (
                    [r.memory.owner for r in records],
                    [r.memory.zone.value for r in records],
                    [r.memory.content_hash for r in records],
                ),
            )
            existing = {_dedup_key(m): m for m in map(_memory, await cur.fetchall())}
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
                column(lambda m, r: None if r.embedding is None else _vector_literal(r.embedding)),
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
                await conn.execute("VACUUM memories")
        return count

    async def delete(self, ids: Sequence[str]) -> int:
        return await self._delete_where("id = ANY(%s)", [list(ids)]) if ids else 0

    async def tombstone(self, ids: Sequence[str], hlc: int, at: datetime) -> int:
        async with self._connection() as conn:
            cur = await conn.execute(
                "UPDATE memories SET content = '', index_text = NULL, embedding = NULL, tags = '{}', "
                "metadata = '{}', tombstone = true, hlc = %s, invalid_at = %s, "
                "seq = nextval('memory_seq') WHERE id = ANY(%s) AND NOT tombstone",
                (hlc, at, list(ids)),
            )
            count = cur.rowcount
            if count:
                await conn.execute("VACUUM memories")
        return count

    async def delete_owner(self, owner: str) -> int:
        return await self._delete_where("owner = %s", [owner])

    async def purge_expired(self, now: datetime) -> int:
        return await self._delete_where("expires_at IS NOT NULL AND expires_at <= %s", [now])

    async def purge_tombstones(self, before: datetime) -> int:
        return await self._delete_where("tombstone AND invalid_at <= %s", [before])

    async def set_embeddings(self, items: Sequence[tuple[str, Vector]], model_id: str) -> None:
        async with self._connection() as conn, conn.transaction():
            for memory_id, vector in items:
                await conn.execute(
                    "UPDATE memories SET embedding = %s::vector, embed_model = %s, "
                    "seq = nextval('memory_seq') WHERE id = %s",
                    (_vector_literal(vector), model_id, memory_id),
                )

    # -- reads ---------------------------------------------------------------------------------
    async def get(self, memory_id: str, viewer: Viewer) -> Memory | None:
        condition, params = _where(viewer, Filters(include_invalid=True), datetime.now(UTC))
        sql = f"SELECT {_COLUMNS} FROM memories m WHERE m.id = %s AND {condition}"
        async with self._connection() as conn:
            row = await (await conn.execute(sql, [memory_id, *params])).fetchone()
        return None if row is None else _memory(row)

    async def fetch(
        self, ids: Sequence[str], viewer: Viewer, filters: Filters, now: datetime
    ) -> list[Memory]:
        if not ids:
            return []
        where, params = _where(viewer, filters, now)
        async with self._connection() as conn:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM memories m WHERE m.id = ANY(%s) AND {where}",
                [list(ids), *params],
            )
            return [_memory(r) for r in await cur.fetchall()]

    async def list_memories(
        self, viewer: Viewer, filters: Filters, now: datetime, limit: int, after_seq: int | None
    ) -> list[Memory]:
        where, params = _where(viewer, filters, now)
        if after_seq is not None:
            where += " AND m.seq > %s"
            params.append(after_seq)
        async with self._connection() as conn:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM memories m WHERE {where} ORDER BY m.seq LIMIT %s",
                [*params, limit],
            )
            return [_memory(r) for r in await cur.fetchall()]

    async def vector_candidates(
        self, vector: Vector, viewer: Viewer, filters: Filters, now: datetime, k: int
    ) -> list[Candidate]:
        if self._dimension is None:
            return []
        dim = self._dimension
        where, params = _where(viewer, filters, now)
        literal = _vector_literal(vector)
        async with self._connection() as conn:
            cur = await conn.execute(
                f"SELECT m.id, m.valid_at, (m.embedding::vector({dim})) <=> %s::vector({dim}) AS distance "
                f"FROM memories m WHERE m.embedding IS NOT NULL AND {where} "
                f"ORDER BY (m.embedding::vector({dim})) <=> %s::vector({dim}) LIMIT %s",
                [literal, *params, literal, k],
            )
            rows = await cur.fetchall()
        # relaxed_order may return slightly out-of-order rows; order them exactly.
        return sorted(
            (Candidate(r["id"], 1.0 - float(r["distance"]), r["valid_at"]) for r in rows),
            key=lambda c: c.score,
            reverse=True,
        )

    async def text_candidates(
        self, terms: Sequence[str], viewer: Viewer, filters: Filters, now: datetime, k: int
    ) -> list[Candidate]:
        if not terms:
            return []
        where, params = _where(viewer, filters, now)
        async with self._connection() as conn:
            kept = await self._prune_terms(conn, terms)
            if not kept:
                return []
            query = " | ".join(_lexeme(t) for t in kept)
            cur = await conn.execute(
                "SELECT m.id, ts_rank_cd(m.tsv, q, 1) AS rank FROM memories m, "
                f"to_tsquery('simple', %s) q WHERE m.tsv @@ q AND {where} ORDER BY rank DESC LIMIT %s",
                [query, *params, k],
            )
            return [Candidate(r["id"], float(r["rank"])) for r in await cur.fetchall()]

    async def _prune_terms(self, conn: AsyncConnection[Row], terms: Sequence[str]) -> list[str]:
        """``prune_terms`` with document counts from the GIN index, capped just above the budget
        (an exact count of a common term would cost what pruning saves) and cached until the
        table grows by a tenth."""
        head = int(
            (await (await conn.execute("SELECT last_value AS v FROM memory_seq")).fetchone() or {"v": 0})["v"]
        )
        if head > self._df_head * 1.1 + 1000:
            self._df_cache.clear()
            self._df_head = head
        missing = [t for t in terms if t not in self._df_cache]
        if missing:
            cur = await conn.execute(
                "SELECT t.term, (SELECT count(*) FROM (SELECT 1 FROM memories "
                "WHERE tsv @@ to_tsquery('simple', t.lexeme) LIMIT %s) capped) AS n "
                "FROM unnest(%s::text[], %s::text[]) AS t(term, lexeme)",
                (POSTINGS_BUDGET + 1, missing, [_lexeme(t) for t in missing]),
            )
            for row in await cur.fetchall():
                self._df_cache[row["term"]] = int(row["n"])
        return prune_terms({t: self._df_cache[t] for t in terms})

    async def expired_turns(self, now: datetime, limit: int) -> list[Memory]:
        async with self._connection() as conn:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM memories WHERE expires_at <= %s AND thread_id IS NOT NULL "
                "AND NOT tombstone AND NOT encrypted LIMIT %s",
                (now, limit),
            )
            return [_memory(r) for r in await cur.fetchall()]

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
                f"SELECT {_COLUMNS} FROM memories WHERE thread_id = %s AND owner = %s AND hlc {compare} %s "
                f"AND NOT tombstone AND NOT encrypted ORDER BY hlc {order} LIMIT %s",
                (thread_id, owner, hlc, turns),
            )
            rows = await cur.fetchall()
        return [_memory(r) for r in (rows if later else reversed(rows))]

    async def reindex(self, texts: Sequence[tuple[str, str | None]]) -> None:
        async with self._connection() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.executemany(  # tsv is generated from index_text
                "UPDATE memories SET index_text = %s WHERE id = %s", [(t, i) for i, t in texts]
            )

    async def thread_context(self, thread_id: str, owner: str, before_hlc: int, turns: int) -> list[Memory]:
        return await self._thread_turns(thread_id, owner, before_hlc, turns, later=False)

    async def changes_since(self, seq: int, limit: int) -> list[Memory]:
        async with self._connection() as conn:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM memories WHERE seq > %s ORDER BY seq LIMIT %s",
                (seq, limit),
            )
            return [_memory(r) for r in await cur.fetchall()]

    async def scan(self, batch: int) -> AsyncIterator[list[tuple[Memory, Vector | None]]]:
        after = ""
        while True:
            async with self._connection() as conn:
                cur = await conn.execute(
                    f"SELECT {_COLUMNS}, embedding::text AS embedding_text FROM memories "
                    "WHERE id > %s ORDER BY id LIMIT %s",
                    (after, batch),
                )
                rows = await cur.fetchall()
            if not rows:
                return
            yield [(_memory(r), _parse_vector(r["embedding_text"])) for r in rows]
            after = rows[-1]["id"]

    async def count(self) -> int:
        async with self._connection() as conn:
            row = await (
                await conn.execute("SELECT count(*) AS n FROM memories WHERE NOT tombstone")
            ).fetchone()
        return int(row["n"]) if row else 0
