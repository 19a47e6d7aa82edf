from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from noosphere.auth.principal import Level, Principal, PrincipalKind
from noosphere.config import Settings, load_settings
from noosphere.embeddings.minilm import MiniLMEmbedder
from noosphere.node import Node, open_node
from tests.contract.conftest import BACKENDS, fresh_database


def backend_settings(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    if backend == "sqlite":
        return load_settings(None, data_dir=tmp_path / "node")
    url = fresh_database(request.getfixturevalue("pg_url"))
    return load_settings(
        None, data_dir=tmp_path / "node", storage={"backend": "postgres", "postgres_url": url}
    )


@pytest.fixture(params=BACKENDS)
async def any_node(
    request: pytest.FixtureRequest, tmp_path: Path, minilm: MiniLMEmbedder
) -> AsyncIterator[Node]:
    async with open_node(backend_settings(request.param, tmp_path, request), embedder=minilm) as node:
        yield node


async def make_agent(node: Node, name: str, level: Level = Level.L2) -> Principal:
    principal, _ = await node.auth.create(PrincipalKind.AGENT, name, level)
    return principal


async def make_user(node: Node, name: str) -> Principal:
    principal, _ = await node.auth.create(PrincipalKind.USER, name)
    return principal
