"""``noosphere bus`` as a user runs it: real processes on one data directory."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.test_cli import noosphere


def test_bus_commands_send_receive_and_enforce_mailbox_ownership(tmp_path: Path) -> None:
    data = tmp_path / "node"
    coder = json.loads(noosphere(data, "agent", "create", "coder", "--json").stdout)["token"]
    planner = json.loads(noosphere(data, "agent", "create", "planner", "--json").stdout)["token"]

    sent = noosphere(
        data,
        "bus",
        "send",
        "coder",
        "--payload",
        '{"task": "fix"}',
        "--priority",
        "8",
        "--json",
        token=planner,
    )
    assert sent.returncode == 0, sent.stderr
    message_id = json.loads(sent.stdout)["id"]
    assert noosphere(data, "bus", "subscribe", "builds.>", token=coder).returncode == 0
    published = noosphere(data, "bus", "publish", "builds.main", "--json")
    assert json.loads(published.stdout)["delivered_to"] == ["coder"]

    refused = noosphere(data, "bus", "receive", "coder", token=planner)
    assert refused.returncode == 1
    assert "(permission_denied)" in refused.stderr
    spoof = noosphere(data, "bus", "send", "x", "--as", "admin", token=planner)
    assert "(permission_denied)" in spoof.stderr

    got = noosphere(data, "bus", "receive", "coder", "--ack", "--json", token=coder)
    deliveries = json.loads(got.stdout)
    assert [d["envelope"]["priority"] for d in deliveries] == [8, 5]  # priority order
    assert deliveries[0]["envelope"]["id"] == message_id
    assert deliveries[0]["envelope"]["sender"] == "planner"
    assert json.loads(noosphere(data, "bus", "status", "--json").stdout) == []

    bad = noosphere(data, "bus", "send", "coder", "--payload", "[1, 2]")
    assert bad.returncode == 1
    assert "(invalid_request)" in bad.stderr
    assert "Traceback" not in bad.stderr
