"""SQLite backend: one file per node, FTS5 for BM25, an exact in-process vector index.

One connection, used from worker threads one call at a time (SQLite serialises writers anyway);
WAL mode so a CLI process can read and write beside a running node. ``secure_delete`` zeroes the
pages that deleted rows leave behind, and forgetting merges the full-text index and checkpoints
the WAL so no copy of forgotten text survives in the file.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from noosphere.errors import StorageUnavailable
from noosphere.memory.model import Filters, Memory
from noosphere.memory.ranking import prune_terms
from noosphere.store import sqlite_agents as agents_sql
from noosphere.store import sqlite_approvals as approvals_sql
from noosphere.store import sqlite_audit as audit
from noosphere.store import sqlite_jobs as jobs_sql
from noosphere.store import sqlite_ledger as ledger
from noosphere.store import sqlite_mailbox as mail
from noosphere.store import sqlite_sql as sql
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
from noosphere.store.vector_index import ExactVectorIndex, IndexQuery, IndexRow
from noosphere.threads import Threads

T = TypeVar("T")
_UNAVAILABLE = re.compile(r"locked|busy|disk|unable to open|readonly", re.IGNORECASE)


class SQLiteStore:
    """The default backend: ``<data_dir>/noosphere.db``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        # One connection, used by one thread in the order calls arrive.
        self._thread: Threads | None = None
        self._index: ExactVectorIndex | None = None
        self._df_cache: dict[str, int] = {}
        self._df_head = 0

    # -- plumbing ------------------------------------------------------------------------------
    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` on the store's one thread, after the calls handed over before it."""

        def call() -> T:
            if self._conn is None:
                raise StorageUnavailable("the SQLite store is not open")
            try:
                return fn(self._conn)
            except sqlite3.OperationalError as exc:
                if _UNAVAILABLE.search(str(exc)) is None:
                    raise
                # Locked by another process past busy_timeout, the disk full or failing.
                raise StorageUnavailable(f"the database is unavailable: {exc}", retry_after=1) from exc

        if self._thread is None:
            raise StorageUnavailable("the SQLite store is not open")
        return await self._thread.run(call)

    async def open(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Created owner-only before SQLite opens it; SQLite gives its -wal and -shm files the
        # database file's permissions.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        conn.row_factory = sqlite3.Row
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "secure_delete=ON",
            "foreign_keys=ON",
            "busy_timeout=30000",
        ):
            conn.execute(f"PRAGMA {pragma}")
        self._conn = conn
        self._thread = Threads("sqlite", 1)
        await self._run(self._migrate)
        await self._run(self._sync_index)

    async def close(self) -> None:
        """Close after the calls already handed over."""
        thread, self._thread = self._thread, None
        if thread is None:
            return

        def shut() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await thread.run(shut)
        thread.close()

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        current = conn.execute("PRAGMA user_version").fetchone()[0]
        folder = resources.files("noosphere.store") / "migrations" / "sqlite"
        scripts = sorted((p for p in folder.iterdir() if p.name.endswith(".sql")), key=lambda p: p.name)
        for script in scripts:
            version = int(script.name.split("_", 1)[0])
            if version <= current:
                continue
            text = script.read_text(encoding="utf-8")
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in sql.split_sql(text):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {version}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    @staticmethod
    def _transaction(conn: sqlite3.Connection, body: Callable[[], T]) -> T:
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = body()
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    @staticmethod
    def _next_seq(conn: sqlite3.Connection, n: int = 1) -> int:
        row = conn.execute(
            "UPDATE counters SET value = value + ? WHERE name = 'seq' RETURNING value", (n,)
        ).fetchone()
        return int(row[0]) - n + 1

    # -- vector index --------------------------------------------------------------------------
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

    # -- metadata ------------------------------------------------------------------------------
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

    # -- principals ----------------------------------------------------------------------------
    async def forget_principal(self, principal_id: str, mailbox: str) -> int:
        def op(conn: sqlite3.Connection) -> int:
            def body() -> int:
                return sum(
                    conn.execute(statement, (value,)).rowcount
                    for statement, value in (
                        ("DELETE FROM approval_grants WHERE requester = ?", mailbox),
                        ("DELETE FROM mailbox WHERE mailbox = ?", mailbox),
                        ("DELETE FROM subscriptions WHERE subscriber = ?", mailbox),
                        ("UPDATE api_keys SET revoked = 1 WHERE user_id = ? AND revoked = 0", principal_id),
                        ("DELETE FROM conversation_keys WHERE principal_id = ?", principal_id),
                    )
                )

            return self._transaction(conn, body)

        return await self._run(op)

    async def put_principal(self, record: PrincipalRecord) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO principals (id, kind, name, level, token_hash, key_salt, "
                "created_at, disabled, capture, models) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.id,
                    record.kind,
                    record.name,
                    record.level,
                    record.token_hash,
                    record.key_salt,
                    record.created_at.timestamp(),
                    int(record.disabled),
                    int(record.capture),
                    None if record.models is None else json.dumps(list(record.models)),
                ),
            )

        await self._run(op)

    async def principal_by_token_hash(self, token_hash: str) -> PrincipalRecord | None:
        def op(conn: sqlite3.Connection) -> PrincipalRecord | None:
            row = conn.execute("SELECT * FROM principals WHERE token_hash = ?", (token_hash,)).fetchone()
            return None if row is None else sql.principal_of(row)

        return await self._run(op)

    async def principal(self, principal_id: str) -> PrincipalRecord | None:
        def op(conn: sqlite3.Connection) -> PrincipalRecord | None:
            row = conn.execute("SELECT * FROM principals WHERE id = ?", (principal_id,)).fetchone()
            return None if row is None else sql.principal_of(row)

        return await self._run(op)

    async def principals(self, kind: str | None = None) -> list[PrincipalRecord]:
        def op(conn: sqlite3.Connection) -> list[PrincipalRecord]:
            if kind is None:
                rows = conn.execute("SELECT * FROM principals ORDER BY id").fetchall()
            else:
                rows = conn.execute("SELECT * FROM principals WHERE kind = ? ORDER BY id", (kind,)).fetchall()
            return [sql.principal_of(r) for r in rows]

        return await self._run(op)

    async def delete_principal(self, principal_id: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            return conn.execute("DELETE FROM principals WHERE id = ?", (principal_id,)).rowcount > 0

        return await self._run(op)

    # -- API keys, usage and the ledger ---------------------------------------------------------
    async def put_api_key(self, record: ApiKeyRecord) -> None:
        await self._run(lambda conn: ledger.put_api_key(conn, record))

    async def api_key_by_token_hash(self, token_hash: str) -> ApiKeyRecord | None:
        return await self._run(lambda conn: ledger.api_key_by_token_hash(conn, token_hash))

    async def api_keys(self, user_id: str | None = None) -> list[ApiKeyRecord]:
        return await self._run(lambda conn: ledger.api_keys(conn, user_id))

    async def revoke_api_key(self, key_id: str) -> bool:
        return await self._run(lambda conn: ledger.revoke_api_key(conn, key_id))

    async def record_usage(self, batch: Sequence[Charge]) -> None:
        await self._run(lambda conn: self._transaction(conn, lambda: ledger.record_usage(conn, batch)))

    async def balance(self, account: str, period: str = "total") -> float:
        return await self._run(lambda conn: ledger.balance(conn, account, period))

    async def usage_summary(self, by: str, since: datetime | None) -> list[UsageSummary]:
        return await self._run(lambda conn: ledger.usage_summary(conn, by, since))

    # -- audit log -----------------------------------------------------------------------------
    async def append_audit(self, entries: Sequence[tuple[str, bytes]]) -> int:
        return await self._run(lambda conn: self._transaction(conn, lambda: audit.append(conn, entries)))

    async def audit_entries(self, start: int = 0, limit: int | None = None) -> list[AuditEntry]:
        return await self._run(lambda conn: audit.entries(conn, start, limit))

    async def put_tree_head(self, head: TreeHead) -> None:
        await self._run(lambda conn: self._transaction(conn, lambda: audit.put_head(conn, head)))

    async def tree_heads(self) -> list[TreeHead]:
        return await self._run(audit.heads)

    # -- conversation keys -----------------------------------------------------------------------
    async def conversation_key(self, principal_id: str) -> tuple[bytes, str] | None:
        def op(conn: sqlite3.Connection) -> tuple[bytes, str] | None:
            row = conn.execute(
                "SELECT salt, check_value FROM conversation_keys WHERE principal_id = ?", (principal_id,)
            ).fetchone()
            return None if row is None else (bytes(row[0]), str(row[1]))

        return await self._run(op)

    async def put_conversation_key(self, principal_id: str, salt: bytes, check: str, at: datetime) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "INSERT OR IGNORE INTO conversation_keys (principal_id, salt, check_value, created_at) "
                "VALUES (?, ?, ?, ?)",
                (principal_id, salt, check, at.timestamp()),
            )
            return cur.rowcount == 1

        return await self._run(op)

    async def delete_conversation_key(self, principal_id: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            cur = conn.execute("DELETE FROM conversation_keys WHERE principal_id = ?", (principal_id,))
            return cur.rowcount == 1

        return await self._run(op)

    # -- approvals -----------------------------------------------------------------------------
    async def put_approval(self, record: ApprovalRecord) -> None:
        await self._run(lambda conn: approvals_sql.put(conn, record))

    async def approval(self, approval_id: str) -> ApprovalRecord | None:
        return await self._run(lambda conn: approvals_sql.get(conn, approval_id))

    async def approvals(self, status: str | None, limit: int) -> list[ApprovalRecord]:
        return await self._run(lambda conn: approvals_sql.listing(conn, status, limit))

    async def settle_approval(
        self, approval_id: str, status: str, by: str, at: datetime, scope: str | None, note: str | None
    ) -> bool:
        return await self._run(
            lambda conn: approvals_sql.settle(conn, approval_id, status, by, at, scope, note)
        )

    async def due_approvals(self, now: datetime) -> list[ApprovalRecord]:
        return await self._run(lambda conn: approvals_sql.due(conn, now))

    async def open_approval(self, requester: str, tool: str, args_digest: str) -> ApprovalRecord | None:
        return await self._run(lambda conn: approvals_sql.open_for(conn, requester, tool, args_digest))

    async def use_approval(self, approval_id: str, at: datetime) -> bool:
        return await self._run(lambda conn: approvals_sql.use(conn, approval_id, at))

    async def put_grant(
        self, requester: str, tool: str, subject: str | None, session: str | None, by: str, at: datetime
    ) -> None:
        await self._run(lambda conn: approvals_sql.put_grant(conn, requester, tool, subject, session, by, at))

    async def has_grant(self, requester: str, tool: str, subject: str | None, session: str | None) -> bool:
        return await self._run(lambda conn: approvals_sql.has_grant(conn, requester, tool, subject, session))

    # -- agents ---------------------------------------------------------------------------------
    async def put_agent_profile(self, name: str, profile: str, at: datetime) -> None:
        await self._run(lambda conn: agents_sql.put_profile(conn, name, profile, at))

    async def agent_profiles(self, name: str | None = None) -> list[str]:
        return await self._run(lambda conn: agents_sql.profiles(conn, name))

    async def delete_agent_profile(self, name: str) -> bool:
        return await self._run(lambda conn: agents_sql.delete_profile(conn, name))

    async def put_task(self, record: TaskRecord) -> None:
        await self._run(lambda conn: agents_sql.put_task(conn, record))

    async def task(self, task_id: str) -> TaskRecord | None:
        return await self._run(lambda conn: agents_sql.get_task(conn, task_id))

    async def tasks(self, agent: str | None, limit: int) -> list[TaskRecord]:
        return await self._run(lambda conn: agents_sql.tasks(conn, agent, limit))

    async def move_task(
        self, task_id: str, before: Sequence[str], status: str, result: str | None, at: datetime
    ) -> bool:
        return await self._run(lambda conn: agents_sql.move_task(conn, task_id, before, status, result, at))

    async def lease_task(self, task_id: str, until: datetime) -> bool:
        return await self._run(lambda conn: agents_sql.lease_task(conn, task_id, until))

    async def lapsed_tasks(self, now: datetime, limit: int) -> list[TaskRecord]:
        return await self._run(lambda conn: agents_sql.lapsed_tasks(conn, now, limit))

    async def reclaim_task(
        self, task_id: str, lapsed_before: datetime, status: str, result: str | None, at: datetime
    ) -> bool:
        return await self._run(
            lambda conn: agents_sql.reclaim_task(conn, task_id, lapsed_before, status, result, at)
        )

    # -- scheduled jobs -------------------------------------------------------------------------
    async def claim_job_run(self, job: str, tick: str, node: str, at: datetime) -> bool:
        return await self._run(lambda conn: jobs_sql.claim(conn, job, tick, node, at))

    async def finish_job_run(
        self, job: str, tick: str, outcome: str, detail: str | None, at: datetime
    ) -> None:
        await self._run(lambda conn: jobs_sql.finish(conn, job, tick, outcome, detail, at))

    async def job_runs(self, job: str | None, limit: int) -> list[JobRunRecord]:
        return await self._run(lambda conn: jobs_sql.runs(conn, job, limit))

    # -- message bus ---------------------------------------------------------------------------
    async def enqueue_mail(self, rows: Sequence[MailRow], now: float) -> list[bool]:
        return await self._run(lambda conn: self._transaction(conn, lambda: mail.enqueue(conn, rows, now)))

    async def claim_mail(
        self, mailbox: str, now: float, lease: float, limit: int, max_attempts: int
    ) -> list[ClaimedMail]:
        def op(conn: sqlite3.Connection) -> list[ClaimedMail]:
            return self._transaction(conn, lambda: mail.claim(conn, mailbox, now, lease, limit, max_attempts))

        return await self._run(op)

    async def ack_mail(self, mailbox: str, ids: Sequence[str], now: float) -> list[str]:
        if not ids:
            return []
        return await self._run(
            lambda conn: self._transaction(conn, lambda: mail.ack(conn, mailbox, ids, now))
        )

    async def release_mail(self, mailbox: str, ids: Sequence[str], visible_at: float, now: float) -> int:
        if not ids:
            return 0
        return await self._run(lambda conn: mail.release(conn, mailbox, ids, visible_at, now))

    async def subscribe(self, subscriber: str, pattern: str) -> None:
        await self._run(lambda conn: mail.subscribe(conn, subscriber, pattern))

    async def unsubscribe(self, subscriber: str, pattern: str) -> bool:
        return await self._run(lambda conn: mail.unsubscribe(conn, subscriber, pattern))

    async def subscriptions(self, subscriber: str | None = None) -> list[tuple[str, str]]:
        return await self._run(lambda conn: mail.subscriptions(conn, subscriber))

    async def mail_counts(self, mailbox: str | None, now: float) -> list[MailCounts]:
        return await self._run(lambda conn: mail.counts(conn, mailbox, now))

    async def purge_mail(self, now: float, settled_before: float) -> int:
        return await self._run(lambda conn: mail.purge(conn, now, settled_before))

    # -- writes --------------------------------------------------------------------------------
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
                seq = self._next_seq(conn)
                conn.execute(
                    "INSERT INTO memories (id, seq, zone, owner, kind, content, index_text, tags, "
                    "metadata, content_hash, importance, created_at, valid_at, invalid_at, "
                    "expires_at, supersedes, thread_id, embedding, embed_model, encrypted, hlc, "
                    "origin, tombstone) VALUES "
                    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        m.id,
                        seq,
                        m.zone.value,
                        m.owner,
                        m.kind,
                        m.content,
                        record.index_text,
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
                        None if record.embedding is None else record.embedding.astype(np.float32).tobytes(),
                        m.embed_model,
                        int(m.encrypted),
                        m.hlc,
                        m.origin,
                        int(m.tombstone),
                    ),
                )
                out.append(m.model_copy(update={"seq": seq}))
            return out

        def op(conn: sqlite3.Connection) -> list[Memory]:
            result = self._transaction(conn, lambda: body(conn))
            self._sync_index(conn)
            return result

        return await self._run(op)

    def _erase_traces(self, conn: sqlite3.Connection) -> None:
        # Merge FTS segments so deleted terms are dropped, then fold the WAL into the main file
        # (secure_delete zeroes freed pages) so no copy of the text stays on disk.
        conn.execute("INSERT INTO memories_fts (memories_fts) VALUES ('optimize')")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

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
                    count += conn.execute(
                        "UPDATE memories SET content = '', index_text = NULL, embedding = NULL, "
                        "tags = '[]', metadata = '{}', tombstone = 1, hlc = ?, invalid_at = ?, "
                        "seq = ? WHERE id = ? AND tombstone = 0",
                        (hlc, at.timestamp(), self._next_seq(conn), memory_id),
                    ).rowcount
                return count

            count = self._transaction(conn, body)
            self._sync_index(conn)
            if count:
                self._erase_traces(conn)
            return count

        return await self._run(op)

    async def delete_owner(self, owner: str) -> int:
        return await self._run(lambda conn: self._delete_where(conn, "owner = ?", [owner]))

    async def purge_expired(self, now: datetime) -> int:
        return await self._run(
            lambda conn: self._delete_where(
                conn, "expires_at IS NOT NULL AND expires_at <= ?", [now.timestamp()]
            )
        )

    async def purge_tombstones(self, before: datetime) -> int:
        return await self._run(
            lambda conn: self._delete_where(conn, "tombstone = 1 AND invalid_at <= ?", [before.timestamp()])
        )

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

    # -- reads ---------------------------------------------------------------------------------
    async def get(self, memory_id: str, viewer: Viewer) -> Memory | None:
        condition, params = sql.where(viewer, Filters(include_invalid=True), datetime.now(UTC))

        def op(conn: sqlite3.Connection) -> Memory | None:
            query = f"SELECT {sql.COLUMNS} FROM memories m WHERE m.id = ? AND {condition}"
            row = conn.execute(query, [memory_id, *params]).fetchone()
            return None if row is None else sql.memory_of(row)

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
        self, vector: Vector, viewer: Viewer, filters: Filters, now: datetime, k: int
    ) -> list[Candidate]:
        def op(conn: sqlite3.Connection) -> list[Candidate]:
            self._sync_index(conn)
            if self._index is None:
                return []
            allowed = None
            if sql.needs_sql_prefilter(filters):
                where, params = sql.where(viewer, filters, now)
                allowed = np.fromiter(
                    (r[0] for r in conn.execute(f"SELECT m.rowid FROM memories m WHERE {where}", params)),
                    dtype=np.int64,
                )
            query = IndexQuery(
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
            hits = self._index.search(vector, query, k)
            if not hits:
                return []
            marks = ",".join("?" * len(hits))
            ids = dict(
                conn.execute(
                    f"SELECT rowid, id FROM memories WHERE rowid IN ({marks})", [h[0] for h in hits]
                ).fetchall()
            )
            return [Candidate(ids[r], s, sql.dt(v)) for r, s, v in hits if r in ids]

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

        return await self._run(op)

    def _prune_terms(self, conn: sqlite3.Connection, terms: Sequence[str]) -> list[str]:
        """``prune_terms`` with document counts from the fts5vocab table, cached until the index
        grows by a tenth (counting a common term walks its whole posting list)."""
        head = int(conn.execute("SELECT value FROM counters WHERE name = 'seq'").fetchone()[0])
        if head > self._df_head * 1.1 + 1000:
            self._df_cache.clear()
            self._df_head = head
        for term in terms:
            if term not in self._df_cache:
                row = conn.execute("SELECT doc FROM memories_fts_vocab WHERE term = ?", (term,)).fetchone()
                self._df_cache[term] = 0 if row is None else int(row[0])
        return prune_terms({t: self._df_cache[t] for t in terms})

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

    async def reindex(self, texts: Sequence[tuple[str, str | None]]) -> None:
        def op(conn: sqlite3.Connection) -> None:
            def body() -> None:
                # Out of the index, then back in: the memories_fts triggers fire one at a time (an
                # UPDATE from text to text would run both in an order FTS5 cannot follow).
                ids = [(memory_id,) for memory_id, _ in texts]
                conn.executemany("UPDATE memories SET index_text = NULL WHERE id = ?", ids)
                rows = [(text, memory_id) for memory_id, text in texts if text is not None]
                conn.executemany("UPDATE memories SET index_text = ? WHERE id = ?", rows)

            self._transaction(conn, body)
            self._erase_traces(conn)  # the old entries' terms leave the index and the disk

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
