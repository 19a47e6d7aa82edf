"""The connection, migrations and transactions every part of the store uses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from noosphere.errors import StorageUnavailable
from noosphere.store.pgserver import EmbeddedPostgres
from noosphere.store.postgres.sql import Row
from noosphere.store.vector_centre import VectorSums

CONNECT_TIMEOUT_S = 5.0  # waiting longer for a pooled connection: the server is not there


async def _configure(conn: AsyncConnection[Row]) -> None:
    # Filtered vector queries keep scanning the HNSW graph until the LIMIT is filled.
    await conn.execute("SET hnsw.iterative_scan = relaxed_order")
    await conn.execute("SET hnsw.ef_search = 100")
    # Index pages of a memory store live in RAM or on SSD: random reads are cheap, so let the
    # planner use the GIN and HNSW indexes at moderate selectivity (PostgreSQL assumes disks).
    await conn.execute("SET random_page_cost = 1.1")


class PostgresBase:
    def __init__(self, url: str | None, embedded_dir: Path | None = None) -> None:
        self._url = url
        self._embedded = EmbeddedPostgres(embedded_dir) if url is None and embedded_dir else None
        self._pool: AsyncConnectionPool[AsyncConnection[Row]] | None = None
        # The memories' embedding dimension and document-frequency cache (``memories.py``).
        self._dimension: int | None = None
        self._df_cache: dict[str, int] = {}
        self._df_head = 0
        # Each collection's embedding sum and count (``vector_centre.py``), and the sequence
        # number they were computed at; None: to be computed.
        self._sums: VectorSums | None = None
        self._sums_head = 0

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

    @property
    def pool(self) -> AsyncConnectionPool[AsyncConnection[Row]]:
        if self._pool is None:
            raise StorageUnavailable("the PostgreSQL store is not open")
        return self._pool

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
        await self._opened()

    async def _opened(self) -> None:
        """What a part of the store does once the database is open and migrated."""

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
