"""A rule ``ask: ["memory_forget(*)"]`` holds for callers outside the node: over REST and over a
real MCP client the call answers ``approval_required`` with the approval's id, a person approves
it, and the same call repeated goes ahead; both are in the audit log."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from noosphere.embeddings.minilm import MiniLMEmbedder
from noosphere.node import open_node
from tests.integration.conftest import serve_live

RULES = {"ask": ["memory_forget(*)"], "deny": ["bus_subscribe(secrets.*)"]}


async def test_rules_bind_rest_and_mcp_callers(tmp_path: Path, minilm: MiniLMEmbedder) -> None:
    with serve_live(tmp_path / "node", minilm, governance={"rules": RULES}) as live:
        admin = {"Authorization": f"Bearer {live.admin_token}"}
        async with httpx.AsyncClient(base_url=live.url, headers=admin) as http:
            made = await http.post("/api/v1/users", json={"name": "bob"})
            bob = {"Authorization": f"Bearer {made.json()['token']}"}
            stored = await http.post("/api/v1/memories", json={"content": "bob's own note"}, headers=bob)
            memory = stored.json()["id"]

            asked = await http.delete(f"/api/v1/memories/{memory}", headers=bob)
            assert asked.status_code == 403, asked.text
            error = asked.json()["error"]
            assert error["code"] == "approval_required" and error["approval_id"] in error["message"]
            seen = await http.get(f"/api/v1/approvals/{error['approval_id']}", headers=bob)
            assert seen.json()["status"] == "pending"  # bob may follow his own request
            refused = await http.post(
                f"/api/v1/approvals/{error['approval_id']}/approve", json={}, headers=bob
            )
            assert refused.status_code == 403  # but not decide it
            assert (await http.get(f"/api/v1/memories/{memory}", headers=bob)).status_code == 200

            approved = await http.post(f"/api/v1/approvals/{error['approval_id']}/approve", json={})
            assert approved.status_code == 200, approved.text
            assert (await http.delete(f"/api/v1/memories/{memory}", headers=bob)).status_code == 204
            assert (await http.get(f"/api/v1/memories/{memory}", headers=bob)).status_code == 404

            denied = await http.put("/api/v1/bus/subscriptions", json={"pattern": "secrets.keys"})
            assert (denied.status_code, denied.json()["error"]["code"]) == (403, "permission_denied")

            second = await http.post("/api/v1/memories", json={"content": "another note"}, headers=bob)
            async with (
                httpx2.AsyncClient(headers=bob) as mcp_http,
                Client(streamable_http_client(f"{live.url}/mcp", http_client=mcp_http)) as mcp,
            ):
                tried = await mcp.call_tool("memory_forget", {"id": second.json()["id"]})
                assert tried.is_error
                text = tried.content[0].text  # type: ignore[union-attr]
                assert "approval_required: " in text, text
                pending = (await http.get("/api/v1/approvals", params={"status": "pending"})).json()
                assert [(a["requester"], a["tool"]) for a in pending] == [("user:bob", "memory_forget")]
                await http.post(f"/api/v1/approvals/{pending[0]['id']}/approve", json={})
                done = await mcp.call_tool("memory_forget", {"id": second.json()["id"]})
                assert not done.is_error, done.content

        async with open_node(live.settings, embedder=minilm) as node:
            entries = [json.loads(e.entry) for e in await node.store.audit_entries(0, 10_000)]
        tools = [
            (e["actor"], e["body"]["tool"], e["body"]["outcome"])
            for e in entries
            if e["kind"] == "tool" and e["body"]["tool"] == "memory_forget"
        ]
        assert tools == [("user:bob", "memory_forget", "ok")] * 2
