"""The federated view of the SQLite store (``contract/federation.py``)."""

from __future__ import annotations

import sqlite3

import numpy as np

from noosphere.memory.model import Memory
from noosphere.store.contract import Vector
from noosphere.store.sqlite import sql
from noosphere.store.sqlite.base import SQLiteBase


class SQLiteFederation(SQLiteBase):
    async def federated_changes(self, after_seq: int, limit: int) -> list[tuple[Memory, Vector | None]]:
        def op(conn: sqlite3.Connection) -> list[tuple[Memory, Vector | None]]:
            rows = conn.execute(
                f"SELECT {sql.COLUMNS}, embedding FROM federated_memories WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit),
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

        return await self._run(op)
