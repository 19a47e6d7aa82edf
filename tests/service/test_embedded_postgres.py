"""A node on the PostgreSQL backend with no URL starts its own embedded server and keeps data."""

from __future__ import annotations

from pathlib import Path

import pytest

from noosphere.config import load_settings
from noosphere.embeddings.minilm import MiniLMEmbedder
from noosphere.memory.model import MemoryDraft, SearchQuery
from noosphere.node import open_node


@pytest.mark.postgres
async def test_embedded_postgres_keeps_memories_across_restarts(
    tmp_path: Path, minilm: MiniLMEmbedder
) -> None:
    settings = load_settings(None, data_dir=tmp_path / "node", storage={"backend": "postgres"})
    async with open_node(settings, embedder=minilm) as node:
        admin = await node.auth.by_id("admin")
        stored = await node.memory.store_one(admin, MemoryDraft(content="Backups run at 2am"))
    assert (tmp_path / "node" / "pg" / "PG_VERSION").exists()
    async with open_node(settings, embedder=minilm) as node:
        admin = await node.auth.by_id("admin")
        hits = await node.memory.search(admin, SearchQuery(query="when do backups run?"))
        assert hits[0].memory.id == stored.id


@pytest.mark.postgres
async def test_a_node_survives_a_postgresql_restart_without_restarting(
    tmp_path: Path, minilm: MiniLMEmbedder
) -> None:
    """While PostgreSQL is down the node answers storage_unavailable (503 with Retry-After); when
    it is back, the same node process serves again: its pool replaces the broken connections."""
    from noosphere.errors import StorageUnavailable
    from noosphere.store.pgserver import EmbeddedPostgres

    server = EmbeddedPostgres(tmp_path / "pg")
    url = server.start()
    settings = load_settings(
        None, data_dir=tmp_path / "node", storage={"backend": "postgres", "postgres_url": url}
    )
    try:
        async with open_node(settings, embedder=minilm) as node:
            admin = await node.auth.by_id("admin")
            await node.memory.store_one(admin, MemoryDraft(content="before the restart"))
            server.stop()
            with pytest.raises(StorageUnavailable) as down:
                await node.memory.store_one(admin, MemoryDraft(content="while it is down"))
            assert down.value.status == 503 and down.value.retry_after
            assert server.start() == url
            stored = await node.memory.store_one(admin, MemoryDraft(content="after the restart"))
            hits = await node.memory.search(admin, SearchQuery(query="restart"))
            assert {h.memory.content for h in hits} >= {"before the restart", stored.content}
    finally:
        server.stop()
