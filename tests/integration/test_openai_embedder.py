"""The OpenAI-compatible embedder against a real HTTP server speaking the /v1/embeddings wire
format, and a node configured to use it."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI, Header, HTTPException

from noosphere.config import load_settings
from noosphere.embeddings import create_embedder
from noosphere.embeddings.minilm import MiniLMEmbedder
from noosphere.embeddings.openai_compat import OpenAICompatibleEmbedder
from noosphere.errors import EmbedderMismatch, EmbedderUnavailable
from noosphere.memory.model import MemoryDraft, SearchQuery
from noosphere.node import open_node
from tests.integration.conftest import free_port


def embeddings_app(model: MiniLMEmbedder) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/embeddings")
    def embeddings(body: dict[str, Any], authorization: str = Header("")) -> dict[str, Any]:
        if authorization != "Bearer sk-test":
            raise HTTPException(401, "bad key")
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        vectors = model.embed(inputs) * 3.0  # not normalised, as some servers answer
        data = [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)]
        return {"object": "list", "model": body["model"], "data": list(reversed(data))}

    return app


@pytest.fixture
def endpoint(minilm: MiniLMEmbedder) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(embeddings_app(minilm), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "embedding server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(timeout=30)


def test_vectors_come_back_normalised_and_in_order(endpoint: str, minilm: MiniLMEmbedder) -> None:
    embedder = OpenAICompatibleEmbedder(endpoint, "all-minilm", api_key="sk-test")
    texts = ["green tea", "database migrations", ""]
    try:
        vectors = embedder.embed(texts)
        np.testing.assert_allclose(vectors, minilm.embed(texts), atol=1e-5)
        assert embedder.dimension == 384
        assert embedder.model_id == "openai-compat:all-minilm"
    finally:
        embedder.close()


def test_endpoint_errors_are_clear(endpoint: str) -> None:
    for embedder, message in (
        (OpenAICompatibleEmbedder(endpoint, "m", api_key="wrong"), "401"),
        (OpenAICompatibleEmbedder(f"http://127.0.0.1:{free_port()}/v1", "m"), "unreachable"),
    ):
        with pytest.raises(EmbedderUnavailable, match=message):
            embedder.embed(["x"])
        embedder.close()


async def test_a_node_runs_on_the_endpoint_and_refuses_a_silent_model_switch(
    endpoint: str, tmp_path: Path
) -> None:
    settings = load_settings(
        None,
        data_dir=tmp_path / "node",
        embeddings={"provider": "openai", "base_url": endpoint, "model": "all-minilm", "api_key": "sk-test"},
    )
    embedder = create_embedder(settings.embeddings)
    async with open_node(settings, embedder=embedder) as node:
        admin = await node.auth.by_id("admin")
        await node.memory.store_one(admin, MemoryDraft(content="Invoices are due on the 5th"))
        hits = await node.memory.search(admin, SearchQuery(query="when do we pay bills?"))
        assert hits[0].memory.embed_model == "openai-compat:all-minilm"
    embedder.close()
    with pytest.raises(EmbedderMismatch):
        async with open_node(load_settings(None, data_dir=tmp_path / "node")):
            pass


def test_switching_embedders_from_the_cli_needs_reembed(endpoint: str, tmp_path: Path) -> None:
    from tests.integration.test_cli import noosphere

    data = tmp_path / "node"
    assert noosphere(data, "memory", "add", "Standup is at 9:30 on Mondays").returncode == 0
    config = tmp_path / "openai.yaml"
    config.write_text(
        f"embeddings:\n  provider: openai\n  base_url: {endpoint}\n  model: all-minilm\n  api_key: sk-test\n"
    )
    refused = noosphere(data, "memory", "search", "when is standup", "--config", str(config))
    assert refused.returncode == 1
    assert "(embedder_mismatch)" in refused.stderr
    assert "reembed" in refused.stderr
    migrated = noosphere(data, "memory", "reembed", "--config", str(config))
    assert migrated.returncode == 0, migrated.stderr
    assert "re-embedded 1 memories" in migrated.stderr
    found = noosphere(data, "memory", "search", "when is standup", "--json", "--config", str(config))
    assert json.loads(found.stdout)[0]["memory"]["embed_model"] == "openai-compat:all-minilm"
