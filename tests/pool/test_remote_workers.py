"""Remote workers over the real WebSocket: joining, serving, refusals and faults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import anyio
import httpx
import openai
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from websockets.sync.client import connect

from noosphere.config import load_settings
from noosphere.embeddings.minilm import MiniLMEmbedder
from noosphere.pool.protocol import Chunk, Hello, ModelOffer, Rejected, node_frames, worker_frames
from noosphere.pool.worker import RemoteWorker, WorkerRejected, worker_url
from noosphere.testing import FakeModel, until
from tests.integration.conftest import free_port
from tests.pool.conftest import Gateway, serve

HELLO = [{"role": "user", "content": "Say something"}]


@pytest.fixture
def node(tmp_path: Path, minilm: MiniLMEmbedder) -> Iterator[Gateway]:
    settings = load_settings(
        None,
        data_dir=tmp_path / "node",
        server={"port": free_port()},
        pool={"heartbeat_interval_seconds": 0.3, "queue_timeout_seconds": 20},
    )
    yield from serve(settings, minilm, {})


@pytest.fixture
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal() as blocking:
        yield blocking


def models(node: Gateway) -> dict[str, dict[str, object]]:
    response = httpx.get(node.url + "/v1/models", headers={"Authorization": f"Bearer {node.token}"})
    return {m["id"]: m for m in response.json()["data"]}


def join(portal: BlockingPortal, node: Gateway, backend: FakeModel, token: str | None = None) -> Future[None]:
    remote = RemoteWorker(node.url.replace("http", "ws"), token or node.token, backend, "tester")
    return portal.start_task_soon(remote.run)


def test_the_worker_url_is_derived_from_the_join_address() -> None:
    assert worker_url("ws://10.0.0.2:3099") == "ws://10.0.0.2:3099/ws/worker"
    assert worker_url("https://node.example") == "wss://node.example/ws/worker"
    assert worker_url("127.0.0.1:3099") == "ws://127.0.0.1:3099/ws/worker"


def test_a_remote_worker_serves_through_the_gateway(node: Gateway, portal: BlockingPortal) -> None:
    running = join(portal, node, FakeModel("remote-fake", reply="served over a socket"))
    until(lambda: "remote-fake" in models(node), "the worker joined")
    with openai.OpenAI(base_url=node.url + "/v1", api_key=node.token, max_retries=0) as api:
        answer = api.chat.completions.create(model="remote-fake", messages=HELLO)
        assert answer.choices[0].message.content == "served over a socket"
        streamed = "".join(
            c.choices[0].delta.content or ""
            for c in api.chat.completions.create(model="remote-fake", messages=HELLO, stream=True)
        )
        assert streamed == "served over a socket"
    running.cancel()
    until(lambda: "remote-fake" not in models(node), "the worker left")


def test_workers_need_a_worker_or_admin_token(node: Gateway) -> None:
    agent = httpx.post(
        node.url + "/api/v1/agents", json={"name": "bot"}, headers={"Authorization": f"Bearer {node.token}"}
    ).json()["token"]
    for token, code in (("ns_wrong", "unauthenticated"), (agent, "permission_denied")):
        remote = RemoteWorker(node.url.replace("http", "ws"), token, FakeModel(), "intruder")
        with pytest.raises(WorkerRejected) as caught:
            anyio.run(lambda remote=remote: remote.run(reconnect=False))
        assert caught.value.code == code


def worker_token(node: Gateway, *args: str) -> str:
    """``noosphere worker-token ARGS`` as a real process; the token it prints."""
    env = {**os.environ, "NOOSPHERE_DATA_DIR": str(node.settings.data_dir)}
    issued = subprocess.run(
        [sys.executable, "-m", "noosphere", "worker-token", *args, "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    token: str = json.loads(issued.stdout)["token"]
    return token


def test_a_worker_token_from_the_cli_joins(node: Gateway, portal: BlockingPortal) -> None:
    token = worker_token(node, "gpu-box")
    running = join(portal, node, FakeModel("cli-token-model"), token)
    until(lambda: "cli-token-model" in models(node), "the worker joined")
    running.cancel()


def test_malformed_frames_get_the_worker_dropped(node: Gateway) -> None:
    url = worker_url(node.url.replace("http", "ws"))
    hello = Hello(token=node.token, name="sloppy", models=[ModelOffer(name="sloppy-model")])
    with connect(url) as ws:
        ws.send(hello.model_dump_json())
        assert node_frames.validate_json(ws.recv()).type == "accepted"
        assert "sloppy-model" in models(node)
        ws.send('{"type": "chunk", "job_id": 42}')
        reply = node_frames.validate_json(ws.recv())
        assert isinstance(reply, Rejected)
        assert reply.code == "protocol_error"
    assert "sloppy-model" not in models(node)
    with connect(url) as ws:
        ws.send("not a hello")
        refused = node_frames.validate_json(ws.recv())
        assert isinstance(refused, Rejected)
        assert refused.code == "protocol_error"


@pytest.mark.parametrize(
    ("frame", "ok"),
    [
        ({"content": "one two three", "tokens": 3}, True),
        ({"content": "ab", "tokens": 2}, True),
        ({"content": "", "tokens": 1}, True),
        ({"content": "ab", "tokens": 3}, False),  # more tokens than bytes: a counter inflated
        ({"tool_call": {"index": 0, "arguments": "{}"}, "tokens": 1000}, False),
    ],
)
def test_a_chunk_carries_no_more_tokens_than_bytes(frame: dict[str, object], ok: bool) -> None:
    raw = json.dumps({"type": "chunk", "job_id": "job_1", **frame})
    if ok:
        assert isinstance(worker_frames.validate_json(raw), Chunk)
    else:
        with pytest.raises(ValueError, match="cannot carry"):
            worker_frames.validate_json(raw)


def test_a_silent_worker_is_dropped_and_its_unstarted_job_moves_on(
    node: Gateway, portal: BlockingPortal
) -> None:
    url = worker_url(node.url.replace("http", "ws"))
    with connect(url) as silent:
        silent.send(
            Hello(token=node.token, name="silent", models=[ModelOffer(name="echo")]).model_dump_json()
        )
        silent.recv()
        with openai.OpenAI(base_url=node.url + "/v1", api_key=node.token, max_retries=0, timeout=30) as api:
            pending = portal.start_task_soon(
                anyio.to_thread.run_sync, lambda: api.chat.completions.create(model="echo", messages=HELLO)
            )
            job = node_frames.validate_json(silent.recv(timeout=10))
            assert job.type == "job"  # it got the job, and will never answer or heartbeat
            helper = join(portal, node, FakeModel("echo", reply="rescued by another worker"))
            answer = pending.result(timeout=20)
        assert answer.choices[0].message.content == "rescued by another worker"
        helper.cancel()


def test_a_worker_process_killed_mid_stream_ends_the_stream_with_an_error(
    node: Gateway, tmp_path: Path
) -> None:
    env = {**os.environ, "NOOSPHERE_WORKER_TOKEN": node.token}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "noosphere",
            "worker",
            "--join",
            node.url.replace("http", "ws"),
            "--name",
            "doomed",
            "--model-name",
            "doomed-smol",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        until(lambda: "doomed-smol" in models(node), "the worker process joined", timeout=60)
        with openai.OpenAI(base_url=node.url + "/v1", api_key=node.token, max_retries=0) as api:
            stream = api.chat.completions.create(
                model="doomed-smol",
                messages=[{"role": "user", "content": "Write a long essay about rivers."}],
                max_tokens=1500,
                stream=True,
            )
            received = []
            iterator = iter(stream)
            for _ in range(5):
                received.append(next(iterator))
            process.send_signal(signal.SIGKILL)

            def drain() -> None:
                for _ in iterator:
                    pass

            with pytest.raises(openai.APIError, match="worker"):
                drain()
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
    assert received


def test_a_worker_token_serves_only_the_models_it_was_issued_for(
    node: Gateway, portal: BlockingPortal
) -> None:
    token = worker_token(node, "lab", "--model", "qwen-7b")
    impostor = RemoteWorker(node.url.replace("http", "ws"), token, FakeModel("gpt-4o"), "lab")
    with pytest.raises(WorkerRejected, match="may serve qwen-7b, not gpt-4o") as caught:
        anyio.run(lambda: impostor.run(reconnect=False))
    assert caught.value.code == "permission_denied"
    running = join(portal, node, FakeModel("qwen-7b"), token)
    until(lambda: "qwen-7b" in models(node), "the worker joined with its own model")
    assert "gpt-4o" not in models(node)
    running.cancel()
    chat = httpx.post(
        node.url + "/v1/chat/completions",
        json={"model": "qwen-7b", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert chat.status_code == 403  # a worker token is not served chat
