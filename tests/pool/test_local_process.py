"""``noosphere up`` runs its local model in a supervised ``noosphere worker`` process: a crash of
native code there — SIGKILL, an illegal instruction, a segfault — ends the stream it was serving
with an explicit error, the node stays healthy, and the restarted worker serves the next request."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.integration.conftest import free_port, start_node, wait_ready
from tests.pool.conftest import wait_for_model

pytestmark = pytest.mark.slow
MODEL = "smollm2-135m-instruct"


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[str, str]]:
    port = free_port()
    process = start_node(tmp_path / "node", port)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(process, url)
        token = (tmp_path / "node" / "admin-token").read_text().strip()
        wait_for_model(url, token, MODEL)
        yield url, token
    finally:
        process.terminate()
        process.communicate(timeout=30)


def _ready(url: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{url}/readyz", timeout=10).json()
    return body


def _until(condition: Any, what: str, seconds: float = 120) -> Any:
    deadline = time.monotonic() + seconds
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


@pytest.mark.parametrize("crash", [[signal.SIGKILL, signal.SIGILL, signal.SIGSEGV]])
def test_a_crashed_local_worker_ends_its_stream_with_an_error_and_is_restarted(
    node: tuple[str, str], crash: list[signal.Signals]
) -> None:
    url, token = node
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=token, max_retries=0, timeout=120)
    for restarts, sig in enumerate(crash, start=1):
        pid = _ready(url)["local_worker"]["pid"]
        stream = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Tell me a very long story about a lighthouse keeper."}],
            max_tokens=1000,
            stream=True,
        )
        received = ""
        with pytest.raises(openai.APIError) as failed:  # noqa: PT012 - the error arrives mid-stream
            for chunk in stream:
                received += (chunk.choices[0].delta.content or "") if chunk.choices else ""
                if received and pid is not None:
                    os.kill(pid, sig)
                    pid = None
        assert received, "the stream had started before the crash"
        assert "worker" in str(failed.value)
        assert httpx.get(f"{url}/healthz").status_code == 200

        local = _until(
            lambda n=restarts: (
                (w := _ready(url)["local_worker"])["state"] == "running" and w["restarts"] == n and w
            ),
            "the local worker to be restarted",
        )
        assert local["last_exit"] == f"killed by {sig.name}"
        wait_for_model(url, token, MODEL)
        answer = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "What color is the sky on a clear day?"}],
            max_tokens=24,
            temperature=0,
        )
        assert answer.choices[0].message.content
    ready = _ready(url)
    assert ready["status"] == "ready"
    assert ready["store"] == "ok"
    assert ready["loops"]["pool_maintenance"]["state"] == "running"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_node_killed_outright_leaves_no_worker_process_behind(tmp_path: Path) -> None:
    port = free_port()
    process = start_node(tmp_path / "node", port)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(process, url)
        pid = _until(lambda: _ready(url)["local_worker"]["pid"], "the worker process")
    finally:
        process.kill()
        process.wait(timeout=30)
    _until(lambda: not _alive(pid), "the orphaned worker to exit", seconds=30)
    process.communicate(timeout=30)  # the worker held the node's stderr open until it left
