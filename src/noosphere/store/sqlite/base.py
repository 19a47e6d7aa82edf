"""The connection, migrations and transactions every part of the store uses."""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import TypeVar

from noosphere.errors import StorageUnavailable
from noosphere.store.sqlite import sql
from noosphere.store.vector_index import ExactVectorIndex
from noosphere.threads import Threads

T = TypeVar("T")
_UNAVAILABLE = re.compile(r"locked|busy|disk|unable to open|readonly", re.IGNORECASE)


class SQLiteBase:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        # One connection, used by one thread in the order calls arrive.
        self._thread: Threads | None = None
        # The memories' in-process vector index and document-frequency cache (``memories.py``).
        self._index: ExactVectorIndex | None = None
        self._df_cache: dict[str, int] = {}
        self._df_head = 0

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
        await self._opened()

    async def _opened(self) -> None:
        """What a part of the store does once the database is open and migrated."""

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
