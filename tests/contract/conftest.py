from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest

from noosphere.store.contract import EmbedderInfo, MemoryStore
from noosphere.store.postgres import PostgresStore
from noosphere.store.sqlite import SQLiteStore
from noosphere.testing import FakeEmbedder

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def fresh_database(pg_url: str) -> str:
    """A new, empty database on the shared test server; returns its URL."""
    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return pg_url.replace("/postgres?", f"/{name}?")


async def open_store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> MemoryStore:
    store: MemoryStore
    if backend == "sqlite":
        store = SQLiteStore(tmp_path / "store.db")
    else:
        store = PostgresStore(fresh_database(request.getfixturevalue("pg_url")))
    await store.open()
    return store


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture(params=BACKENDS)
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, fake_embedder: FakeEmbedder
) -> AsyncIterator[MemoryStore]:
    opened = await open_store(request.param, tmp_path, request)
    await opened.set_embedder_info(EmbedderInfo(fake_embedder.model_id, fake_embedder.dimension))
    try:
        yield opened
    finally:
        await opened.close()
