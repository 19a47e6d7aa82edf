"""Storage backends behind one contract."""

from __future__ import annotations

from noosphere.config import Settings
from noosphere.store.contract import MemoryStore, Viewer


def create_store(settings: Settings) -> MemoryStore:
    """The backend ``settings.storage`` names (not yet opened)."""
    if settings.storage.backend == "postgres":
        from noosphere.store.postgres import PostgresStore

        return PostgresStore(settings.storage.postgres_url, settings.data_dir / "pg")
    from noosphere.store.sqlite import SQLiteStore

    return SQLiteStore(settings.data_dir / "noosphere.db")


__all__ = ["MemoryStore", "Viewer", "create_store"]
