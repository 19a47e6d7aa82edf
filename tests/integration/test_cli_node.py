"""The CLI beside a running node: it talks to the node over its API (found through the run file
``noosphere up`` leaves in the data directory), and offline it opens the store the node uses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from noosphere import runfile
from tests.integration.conftest import free_port, start_node, wait_ready
from tests.integration.test_cli import noosphere


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    return err


def test_a_command_asks_the_running_node_and_offline_ones_open_its_store(tmp_path: Path) -> None:
    data, port = tmp_path / "node", free_port()
    node = start_node(data, port, "--no-local-worker")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(node, url)
        running = runfile.read(data)
        assert running is not None and running.pid == node.pid and running.url == url and running.alive
        added = noosphere(data, "memory", "add", "The nightly build runs at 2am", "--zone", "shared")
        assert added.returncode == 0, added.stderr
        memory_id = added.stdout.strip()
        token = (data / "admin-token").read_text().strip()
        headers = {"Authorization": f"Bearer {token}"}
        # the node itself answered: its access log (and its metrics) saw the CLI's request
        metrics = httpx.get(f"{url}/metrics", headers=headers).text
        assert 'route="/api/v1/memories",status="201"' in metrics
        listed = json.loads(noosphere(data, "memory", "list", "--json").stdout)
        assert [m["id"] for m in listed["items"]] == [memory_id]
        second = start_node(data, free_port(), "--no-local-worker")
        _, complaint = second.communicate(timeout=60)
        assert second.returncode == 1 and "already runs" in complaint  # one node per data directory
        refused = noosphere(data, "memory", "reembed")
        assert refused.returncode == 1 and "(node_running)" in refused.stderr
    finally:
        err = _stop(node)
    assert "Traceback" not in err
    stopped = runfile.read(data)
    assert stopped is not None and stopped.pid == 0 and not stopped.alive
    offline = json.loads(noosphere(data, "memory", "list", "--json").stdout)
    assert [m["id"] for m in offline["items"]] == [memory_id]


def test_without_a_node_the_cli_says_so_for_what_needs_one(tmp_path: Path) -> None:
    answer = noosphere(tmp_path / "node", "pool")
    assert answer.returncode == 1 and "(unavailable)" in answer.stderr and "noosphere up" in answer.stderr


@pytest.mark.postgres
def test_the_cli_acts_on_the_postgresql_store_its_node_runs_with(tmp_path: Path) -> None:
    """``up --config pg.yaml --data-dir D``, then ``agent create x --data-dir D``: the agent is in
    the node's PostgreSQL store (its token works), running or not, and no SQLite file appears."""
    data, port = tmp_path / "node", free_port()
    config = tmp_path / "pg.yaml"
    config.write_text("storage:\n  backend: postgres\npool:\n  local_worker: false\n")
    node = start_node(data, port, "--config", str(config))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(node, url)
        created = noosphere(data, "agent", "create", "scribe", "--json")
        assert created.returncode == 0, created.stderr
        token = json.loads(created.stdout)["token"]
        mine = httpx.get(f"{url}/api/v1/memories", headers={"Authorization": f"Bearer {token}"})
        assert mine.status_code == 200, mine.text
    finally:
        _stop(node)
    assert not (data / "noosphere.db").exists()
    offline = json.loads(noosphere(data, "agent", "list", "--json").stdout)  # no --config given
    assert [a["name"] for a in offline] == ["scribe"]
    assert not (data / "noosphere.db").exists()


async def test_noosphere_mcp_relays_stdio_to_the_running_node(tmp_path: Path) -> None:
    """An MCP client that launches ``noosphere mcp`` talks to the running node's /mcp: what it
    stores, the node holds at once, and the node served the calls."""
    data, port = tmp_path / "node", free_port()
    node = start_node(data, port, "--no-local-worker")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(node, url)
        created = noosphere(data, "agent", "create", "cursor", "--json")
        token = json.loads(created.stdout)["token"]
        env = {**os.environ, "NOOSPHERE_DATA_DIR": str(data), "NOOSPHERE_TOKEN": token}
        params = StdioServerParameters(command=sys.executable, args=["-m", "noosphere", "mcp"], env=env)
        async with Client(params) as client:
            stored = await client.call_tool(
                "memory_store", {"content": "The relay keeps one node", "zone": "shared"}
            )
            assert not stored.is_error, stored
            found = await client.call_tool("memory_search", {"query": "what keeps one node?"})
            assert found.structured_content is not None
            assert found.structured_content["hits"][0]["content"] == "The relay keeps one node"
        headers = {"Authorization": f"Bearer {token}"}
        admin = {"Authorization": f"Bearer {(data / 'admin-token').read_text().strip()}"}
        async with httpx.AsyncClient(base_url=url) as http:
            listed = (await http.get("/api/v1/memories", headers=headers)).json()
            assert [m["content"] for m in listed["items"]] == ["The relay keeps one node"]
            assert 'route="/mcp",status="200"' in (await http.get("/metrics", headers=admin)).text
    finally:
        _stop(node)
