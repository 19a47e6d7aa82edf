"""Human checkpoints decided through REST, the CLI and MCP."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import httpx2
from fastapi.testclient import TestClient
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from noosphere.config import load_settings
from noosphere.embeddings.minilm import MiniLMEmbedder
from noosphere.governance.policy import ToolCall
from noosphere.node import Node, open_node
from tests.integration.conftest import Live
from tests.integration.test_cli import noosphere

CALL = ToolCall("Bash", "git push", impact=0.8)


async def ask(node: Node) -> str:
    record = await node.checkpoints.request("coder", "L2", CALL, {"command": "git push"}, "asks", "s1")
    return record.id


def _token(client: TestClient, kind: str, name: str) -> str:
    response = client.post(f"/api/v1/{kind}", json={"name": name})
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


def test_people_list_and_decide_approvals_over_rest(client: TestClient) -> None:
    node: Node = client.app.state.node  # type: ignore[attr-defined]
    first = client.portal.call(ask, node)  # type: ignore[union-attr]
    second = client.portal.call(ask, node)  # type: ignore[union-attr]
    pending = client.get("/api/v1/approvals", params={"status": "pending"}).json()
    assert {a["id"] for a in pending} == {first, second}
    assert pending[0]["args_digest"] and pending[0]["tool"] == "Bash"

    approved = client.post(f"/api/v1/approvals/{first}/approve", json={"scope": "session", "note": "ok"})
    assert approved.status_code == 200, approved.text
    assert (approved.json()["status"], approved.json()["scope"]) == ("approved", "session")
    again = client.post(f"/api/v1/approvals/{first}/reject", json={})
    assert (again.status_code, again.json()["error"]["code"]) == (409, "conflict")

    made = client.post("/api/v1/agents", json={"name": "coder", "approvers": ["bob"]})
    as_agent = {"Authorization": f"Bearer {made.json()['token']}"}
    refused = client.post(f"/api/v1/approvals/{second}/approve", json={}, headers=as_agent)
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "permission_denied")
    assert client.get("/api/v1/approvals", headers=as_agent).status_code == 403
    mine = client.get(f"/api/v1/approvals/{second}", headers=as_agent)  # the agent asked for it
    assert mine.json()["status"] == "pending"

    eve = {"Authorization": f"Bearer {_token(client, 'users', 'eve')}"}  # named nowhere
    assert client.get("/api/v1/approvals", headers=eve).json() == []
    refused = client.post(f"/api/v1/approvals/{second}/approve", json={"scope": "always"}, headers=eve)
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "permission_denied")
    bob = {"Authorization": f"Bearer {_token(client, 'users', 'bob')}"}  # coder's named approver
    assert {a["id"] for a in client.get("/api/v1/approvals", headers=bob).json()} == {first, second}
    escalated = client.post(f"/api/v1/approvals/{second}/escalate", json={"note": "admin?"}, headers=bob)
    assert escalated.json()["status"] == "escalated"
    up = client.get(f"/api/v1/approvals/{second}-up").json()
    assert (up["status"], up["escalated_from"]) == ("pending", second)
    not_bob = client.post(f"/api/v1/approvals/{second}-up/approve", json={}, headers=bob)
    assert not_bob.status_code == 403
    bad = client.post(f"/api/v1/approvals/{second}-up/approve", json={"scope": "forever"})
    assert bad.status_code == 422
    assert client.get("/api/v1/approvals/nope").status_code == 404


def test_the_cli_lists_and_approves_what_a_node_asked(tmp_path: Path, minilm: MiniLMEmbedder) -> None:
    data = tmp_path / "node"

    async def asked() -> str:
        async with open_node(load_settings(None, data_dir=data), embedder=minilm) as node:
            return await ask(node)

    approval = anyio.run(asked)
    listed = noosphere(data, "approvals", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [a["id"] for a in json.loads(listed.stdout)] == [approval]
    table = noosphere(data, "approvals", "list")
    assert approval in table.stderr and "git push" in table.stderr

    approved = noosphere(data, "approvals", "approve", approval, "--scope", "always", "--json")
    assert approved.returncode == 0, approved.stderr
    assert (json.loads(approved.stdout)["status"], json.loads(approved.stdout)["scope"]) == (
        "approved",
        "always",
    )
    late = noosphere(data, "approvals", "reject", approval)
    assert late.returncode == 1
    assert "(conflict)" in late.stderr and "already approved" in late.stderr
    assert json.loads(noosphere(data, "approvals", "list", "--json").stdout) == []
    everything = json.loads(noosphere(data, "approvals", "list", "--all", "--json").stdout)
    assert [a["status"] for a in everything] == ["approved"]
    missing = noosphere(data, "approvals", "show", "nope")
    assert "(not_found)" in missing.stderr


async def test_mcp_tools_list_and_decide_for_people(live: Live, minilm: MiniLMEmbedder) -> None:
    async with open_node(live.settings, embedder=minilm) as node:
        approval = await ask(node)
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {live.admin_token}"}) as http,
        Client(streamable_http_client(f"{live.url}/mcp", http_client=http)) as client,
    ):
        listed = await client.call_tool("approvals_list", {})
        assert listed.structured_content is not None
        assert [a["id"] for a in listed.structured_content["approvals"]] == [approval]
        decided = await client.call_tool(
            "approval_decide", {"id": approval, "verdict": "reject", "note": "no"}
        )
        assert decided.structured_content is not None
        assert (decided.structured_content["status"], decided.structured_content["note"]) == (
            "rejected",
            "no",
        )
