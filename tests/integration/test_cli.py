"""The command line, as a user runs it: a real process on a real data directory."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
from pathlib import Path

import httpx

from tests.integration.conftest import free_port, start_node, wait_ready


def noosphere(
    data_dir: Path, *args: str, token: str | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NOOSPHERE_DATA_DIR": str(data_dir)}
    env.pop("NOOSPHERE_TOKEN", None)
    if token:
        env["NOOSPHERE_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "noosphere", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_memory_commands_round_trip(tmp_path: Path) -> None:
    data = tmp_path / "node"
    agent = noosphere(data, "agent", "create", "aider", "--level", "L2", "--json")
    assert agent.returncode == 0, agent.stderr
    token = json.loads(agent.stdout)["token"]
    added = noosphere(
        data,
        "memory",
        "add",
        "The CI runner needs 8 GB of RAM",
        "--zone",
        "shared",
        "--tag",
        "ci",
        token=token,
    )
    assert added.returncode == 0, added.stderr
    memory_id = added.stdout.strip()
    found = noosphere(data, "memory", "search", "how much memory does CI need", "--json", token=token)
    hits = json.loads(found.stdout)
    assert hits[0]["memory"]["id"] == memory_id
    got = json.loads(noosphere(data, "memory", "get", memory_id, token=token).stdout)
    assert got["tags"] == ["ci"]
    listed = json.loads(noosphere(data, "memory", "list", "--json", token=token).stdout)
    assert [m["id"] for m in listed["items"]] == [memory_id]

    bundle = tmp_path / "bundle.jsonl"
    exported = noosphere(data, "memory", "export", "--output", str(bundle))
    assert exported.returncode == 0, exported.stderr
    assert "exported 1 memories" in exported.stderr
    # Forgetting (impact 0.6) by an agent waits for a person, from the CLI as from inside the node.
    asked = noosphere(data, "memory", "forget", memory_id, token=token)
    assert asked.returncode == 1 and "(approval_required)" in asked.stderr, asked.stderr
    approval = re.search(r"approval ([0-9a-f]{16})", asked.stderr)
    assert approval is not None
    assert noosphere(data, "approvals", "approve", approval[1]).returncode == 0
    assert noosphere(data, "memory", "forget", memory_id, token=token).returncode == 0
    assert noosphere(data, "memory", "get", memory_id, token=token).returncode == 1
    imported = noosphere(data, "memory", "import", str(bundle))
    assert "imported 1" in imported.stderr, imported.stderr
    assert json.loads(noosphere(data, "memory", "get", memory_id, token=token).stdout)["id"] == memory_id


def test_errors_are_one_line_with_a_code(tmp_path: Path) -> None:
    data = tmp_path / "node"
    result = noosphere(data, "memory", "get", "no-such-id")
    assert result.returncode == 1
    assert "(not_found)" in result.stderr
    assert "Traceback" not in result.stderr
    bad_token = noosphere(data, "memory", "list", token="ns_wrong")
    assert bad_token.returncode == 1
    assert "(unauthenticated)" in bad_token.stderr
    config = tmp_path / "bad.yaml"
    config.write_text("server:\n  port: many\n")
    invalid = noosphere(data, "memory", "list", "--config", str(config))
    assert invalid.returncode == 1
    assert "server.port" in invalid.stderr
    assert "Traceback" not in invalid.stderr


def test_node_show_gives_the_identity_before_the_first_start(tmp_path: Path) -> None:
    """Peers can be configured before a node first starts: ``node show`` creates its key in a new,
    private data directory, and says the same id every time."""
    data = tmp_path / "new" / "node"
    shown = noosphere(data, "node", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    identity = json.loads(shown.stdout)
    assert re.fullmatch(r"node-[a-z2-7]{24}", identity["id"])
    assert set(identity) == {"id", "public_key", "name", "data_dir"} and identity["name"] == "local"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "node-key.pem").stat().st_mode) == 0o600
    again = noosphere(data, "node", "show")
    assert again.returncode == 0 and f"id          {identity['id']}" in again.stdout
    assert identity["public_key"] in again.stdout


def test_up_serves_until_ctrl_c_and_writes_a_private_admin_token(tmp_path: Path) -> None:
    data = tmp_path / "node"
    port = free_port()
    identity = json.loads(noosphere(data, "node", "show", "--json").stdout)
    process = start_node(data, port)
    try:
        wait_ready(process, f"http://127.0.0.1:{port}")
        health = httpx.get(f"http://127.0.0.1:{port}/readyz").json()
        assert (health["node_id"], health["name"]) == (identity["id"], "local")  # the key's id
        token_file = data / "admin-token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        response = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/memories", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0
    assert token in err  # printed once, at first start
    assert f"http://127.0.0.1:{port}/mcp" in err
    assert "Traceback" not in err


def test_agent_token_issues_a_new_token_and_revokes_the_old(tmp_path: Path) -> None:
    data = tmp_path / "node"
    old = json.loads(noosphere(data, "agent", "create", "bot", "--json").stdout)["token"]
    new = json.loads(noosphere(data, "agent", "token", "bot", "--json").stdout)["token"]
    assert new != old
    assert noosphere(data, "memory", "list", token=new).returncode == 0
    assert noosphere(data, "memory", "list", token=old).returncode == 1
    refused = noosphere(data, "agent", "list", token=new)
    assert refused.returncode == 1
    assert "(permission_denied)" in refused.stderr
