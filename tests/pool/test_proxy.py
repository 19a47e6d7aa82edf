"""Proxying to a real OpenAI-compatible server — another noosphere node — both as an upstream
declared in config and through ``noosphere worker --proxy``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from noosphere.config import load_settings
from noosphere.embeddings.minilm import MiniLMEmbedder
from noosphere.testing import FakeModel
from tests.integration.conftest import free_port
from tests.pool.conftest import TOOL_CALLS, Gateway, serve

HELLO = [{"role": "user", "content": "Say something"}]
TOOLS = [
    {"type": "function", "function": {"name": n, "parameters": {"type": "object"}}} for n, _ in TOOL_CALLS
]


@pytest.fixture
def origin(tmp_path: Path, minilm: MiniLMEmbedder) -> Iterator[Gateway]:
    # No worker checker: its probe of "far-crash" (which fails on purpose) would exclude that worker.
    settings = load_settings(
        None, data_dir=tmp_path / "origin", server={"port": free_port()}, pool={"checker": False}
    )
    models = {
        "far-model": FakeModel("far-model", reply="answered by the origin node"),
        "far-tools": FakeModel("far-tools", tool_calls=TOOL_CALLS),
        "far-crash": FakeModel("far-crash", reply="a b c d e f", fail_after=2),
    }
    yield from serve(settings, minilm, models)


@pytest.fixture
def edge(tmp_path: Path, minilm: MiniLMEmbedder, origin: Gateway) -> Iterator[Gateway]:
    upstream = {
        "name": "origin",
        "base_url": origin.url + "/v1",
        "api_key": origin.token,
        "models": ["far-model", "far-tools", "far-crash"],
    }
    settings = load_settings(
        None, data_dir=tmp_path / "edge", server={"port": free_port()}, pool={"upstreams": [upstream]}
    )
    yield from serve(settings, minilm, {})


def test_an_upstream_serves_whole_and_streamed_answers(edge: Gateway) -> None:
    with openai.OpenAI(base_url=edge.url + "/v1", api_key=edge.token, max_retries=0) as api:
        models = {m.id: m.model_extra for m in api.models.list()}
        assert models["far-model"] is not None
        assert models["far-model"]["upstreams"] == 1
        whole = api.chat.completions.create(model="far-model", messages=HELLO)
        assert whole.choices[0].message.content == "answered by the origin node"
        streamed = "".join(
            c.choices[0].delta.content or ""
            for c in api.chat.completions.create(model="far-model", messages=HELLO, stream=True)
        )
        assert streamed == "answered by the origin node"


def test_tool_calls_survive_the_proxy(edge: Gateway) -> None:
    with openai.OpenAI(base_url=edge.url + "/v1", api_key=edge.token, max_retries=0) as api:
        completion = api.chat.completions.create(model="far-tools", messages=HELLO, tools=TOOLS)  # type: ignore[arg-type]
        calls = completion.choices[0].message.tool_calls or []
        assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [  # type: ignore[union-attr]
            (name, json.loads(args)) for name, args in TOOL_CALLS
        ]


def test_an_upstream_failing_mid_stream_is_an_in_stream_error(edge: Gateway) -> None:
    with openai.OpenAI(base_url=edge.url + "/v1", api_key=edge.token, max_retries=0) as api:
        stream = api.chat.completions.create(model="far-crash", messages=HELLO, stream=True)
        with pytest.raises(openai.APIError, match="crash"):
            list(stream)


@pytest.fixture
def hub(tmp_path: Path, minilm: MiniLMEmbedder) -> Iterator[Gateway]:
    yield from serve(load_settings(None, data_dir=tmp_path / "hub", server={"port": free_port()}), minilm, {})


def test_a_proxy_worker_process_serves_the_origin_models(origin: Gateway, hub: Gateway) -> None:
    env = {**os.environ, "NOOSPHERE_WORKER_TOKEN": hub.token, "NOOSPHERE_PROXY_KEY": origin.token}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "noosphere",
            "worker",
            "--join",
            hub.url.replace("http", "ws"),
            "--proxy",
            origin.url + "/v1",
            "--proxy-model",
            "far-model",
            "--capacity",
            "4",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        headers = {"Authorization": f"Bearer {hub.token}"}
        while "far-model" not in {
            m["id"] for m in httpx.get(hub.url + "/v1/models", headers=headers).json()["data"]
        }:
            assert time.monotonic() < deadline, "the proxy worker did not join"
            assert process.poll() is None, "the proxy worker exited"
            time.sleep(0.1)
        with openai.OpenAI(base_url=hub.url + "/v1", api_key=hub.token, max_retries=0) as api:
            answer = api.chat.completions.create(model="far-model", messages=HELLO)
        assert answer.choices[0].message.content == "answered by the origin node"
    finally:
        process.terminate()
        process.wait(timeout=30)
