"""A node killed outright under load has the usage of the answers it completed in its ledger: all of
them with ``pool.ledger_delay_ms: 0`` (written before an answer's last byte goes out), and all but
those completed within the delay by default (written in shared transactions within the delay),
never a backlog that a kill -9 would empty."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx
import pytest

from tests.integration.conftest import free_port, start_node, wait_ready

pytestmark = pytest.mark.slow
STREAMS = 8


def _mock(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "bench.mock_openai", str(port)])


@pytest.mark.parametrize("delay_ms", [0, 25])
def test_a_node_killed_under_load_has_recorded_the_answers_it_completed(
    tmp_path: Path, delay_ms: int
) -> None:
    mock_port, port = free_port(), free_port()
    config = tmp_path / "node.yaml"
    config.write_text(
        f"pool:\n  checker: false\n  ledger_delay_ms: {delay_ms}\n  upstreams:\n"
        f"    - {{name: mock, base_url: 'http://127.0.0.1:{mock_port}/v1', models: [mock], "
        "max_concurrency: 16}\n"
    )
    mock = _mock(mock_port)
    node = start_node(tmp_path / "node", port, "--no-local-worker", "--config", str(config))
    url = f"http://127.0.0.1:{port}"
    answered, seconds = 0, 0.0
    try:
        wait_ready(node, url)
        token = (tmp_path / "node" / "admin-token").read_text().strip()

        async def client(stop_at: float) -> None:
            nonlocal answered
            body = {"model": "mock", "messages": [{"role": "user", "content": "hi"}], "stream": True}
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as http:
                while time.monotonic() < stop_at:
                    try:
                        async with http.stream("POST", "/v1/chat/completions", json=body) as reply:
                            text = "".join([part async for part in reply.aiter_text()])
                    except httpx.HTTPError:
                        return  # the node is gone
                    if text.rstrip().endswith("data: [DONE]"):
                        answered += 1

        async def load_then_kill() -> None:
            nonlocal seconds
            stop_at = time.monotonic() + 30
            started = time.monotonic()
            async with anyio.create_task_group() as group:
                for _ in range(STREAMS):
                    group.start_soon(client, stop_at)
                await anyio.sleep(3)
                node.send_signal(signal.SIGKILL)  # mid-load: requests in every state
                seconds = time.monotonic() - started

        anyio.run(load_then_kill)
    finally:
        node.kill()
        node.communicate(timeout=30)
        mock.terminate()
        mock.wait(timeout=30)
    assert node.returncode == -signal.SIGKILL
    assert answered > 50, "the load reached the node"
    with sqlite3.connect(tmp_path / "node" / "noosphere.db") as db:
        (recorded,) = db.execute("SELECT count(*) FROM usage_requests WHERE status = 'ok'").fetchone()
        (unbalanced,) = db.execute(
            "SELECT count(*) FROM (SELECT request_id FROM ledger_entries GROUP BY request_id "
            "HAVING abs(sum(amount)) > 1e-9)"
        ).fetchone()
    assert unbalanced == 0
    # At most the answers in flight at the kill were recorded but never delivered.
    assert recorded <= answered + STREAMS
    if delay_ms == 0:  # every completed answer was paid for
        assert recorded >= answered
    else:  # all but those completed in the last moments: the delay and the write under way
        rate = answered / seconds
        assert answered - recorded <= max(STREAMS, rate * 10 * delay_ms / 1000), (answered, recorded, rate)
