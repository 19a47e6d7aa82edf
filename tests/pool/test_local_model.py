"""The real thing: SmolLM2-135M-Instruct through llama.cpp in the node's supervised worker
process, behind the gateway, via the official openai client over a socket."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import uvicorn

from noosphere.config import load_settings
from noosphere.embeddings.minilm import MiniLMEmbedder
from noosphere.pool.backends.llama import bundled_smollm2
from noosphere.server.app import create_app
from tests.integration.conftest import free_port
from tests.pool.conftest import wait_for_model

MODEL = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def smol_url(tmp_path_factory: pytest.TempPathFactory, minilm: MiniLMEmbedder) -> Iterator[tuple[str, str]]:
    port = free_port()
    settings = load_settings(None, data_dir=tmp_path_factory.mktemp("smol"), server={"port": port})
    app = create_app(settings, embedder=minilm, local_model=bundled_smollm2())
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "node did not start"
        time.sleep(0.05)
    token = (Path(settings.data_dir) / "admin-token").read_text().strip()
    wait_for_model(f"http://127.0.0.1:{port}", token, MODEL)
    yield f"http://127.0.0.1:{port}/v1", token
    server.should_exit = True
    thread.join(timeout=30)


@pytest.fixture
def api(smol_url: tuple[str, str]) -> Iterator[openai.OpenAI]:
    url, token = smol_url
    with openai.OpenAI(base_url=url, api_key=token, max_retries=0) as client:
        yield client


def test_smollm2_answers_a_question(api: openai.OpenAI) -> None:
    completion = api.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "What color is the sky on a clear day?"}],
        max_tokens=32,
        temperature=0,
    )
    answer = completion.choices[0].message.content or ""
    assert "blue" in answer.lower()
    assert completion.usage is not None
    assert completion.usage.completion_tokens > 0


def test_smollm2_streams_and_stops_at_max_tokens(api: openai.OpenAI) -> None:
    chunks = list(
        api.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Tell me a long story about a cat."}],
            max_tokens=12,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    assert chunks[-2].choices[0].finish_reason == "length"
    assert chunks[-1].usage is not None


def test_smollm2_calls_a_forced_tool(api: openai.OpenAI) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
    completion = api.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "What is the weather in Lyon?"}],
        tools=[tool],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},  # type: ignore[list-item, typeddict-item]
        max_tokens=48,
        temperature=0,
    )
    (call,) = completion.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert "city" in json.loads(call.function.arguments)  # type: ignore[union-attr]
    assert completion.choices[0].finish_reason == "tool_calls"


def test_the_models_endpoint_shows_the_local_worker(api: openai.OpenAI) -> None:
    (model,) = [m for m in api.models.list() if m.id == MODEL]
    assert model.model_extra is not None
    assert model.model_extra["workers"] == 1
    assert model.model_extra["context_length"] == 2048
