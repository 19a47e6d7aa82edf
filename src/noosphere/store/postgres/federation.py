"""The federated view of the PostgreSQL store (``contract/federation.py``)."""

from __future__ import annotations

from noosphere.memory.model import Memory
from noosphere.store.contract import Vector
from noosphere.store.postgres import sql
from noosphere.store.postgres.base import PostgresBase


class PostgresFederation(PostgresBase):
    async def federated_changes(self, after_seq: int, limit: int) -> list[tuple[Memory, Vector | None]]:
        async with self._connection() as conn:
            cur = await conn.execute(
                f"SELECT {sql.COLUMNS}, embedding::text AS embedding_text FROM federated_memories "
                "WHERE seq > %s ORDER BY seq LIMIT %s",
                (after_seq, limit),
            )
            return [(sql.memory_of(r), sql.parse_vector(r["embedding_text"])) for r in await cur.fetchall()]
