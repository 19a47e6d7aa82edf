"""MCP servers configured on a running node: their tools listed over REST and used by an agent
through the real pool path; and a node's own MCP endpoint reached as a server over HTTP."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import httpx

from noosphere.agents.mcp_tools import McpToolbox
from noosphere.config import McpServerSettings
from noosphere.embeddings.minilm import MiniLMEmbedder
from noosphere.testing import FakeModel
from tests.integration.conftest import serve_live

NOTES_SERVER = Path(__file__).parents[1] / "service" / "notes_mcp_server.py"


def test_a_node_offers_its_mcp_servers_tools_to_agents(tmp_path: Path, minilm: MiniLMEmbedder) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("standup at 9:30\n")
    server = {"name": "notes", "command": sys.executable, "args": [str(NOTES_SERVER)], "trusted": True}
    server["env"] = {"NOTES_FILE": str(notes)}  # type: ignore[assignment]
    backends = [("reader", FakeModel(model="reader", tool_calls=[("notes__list_notes", "{}")]))]
    with serve_live(tmp_path / "node", minilm, backends, runtime={"mcp_servers": [server]}) as live:
        admin = {"Authorization": f"Bearer {live.admin_token}"}
        tools = httpx.get(f"{live.url}/api/v1/tools", headers=admin).json()
        by_name = {tool["name"]: tool for tool in tools}
        assert by_name["notes__list_notes"]["source"] == "notes"
        assert (by_name["notes__list_notes"]["writes"], by_name["notes__clear_notes"]["impact"]) == (
            False,
            0.8,
        )
        assert by_name["memory_search"]["source"] == "builtin"
        httpx.post(
            f"{live.url}/api/v1/agents",
            json={"name": "clerk", "model": "reader", "max_steps": 2},
            headers=admin,
        )
        run = httpx.post(
            f"{live.url}/api/v1/agents/clerk/run",
            json={"task": "read notes", "stream": False},
            headers=admin,
            timeout=60,
        ).json()
        # read-only: cleared without asking, run in the server process, answered to the model
        assert run["calls"] == [{"tool": "notes__list_notes", "outcome": "ok"}] * 2


async def test_a_nodes_own_mcp_endpoint_serves_as_an_http_mcp_server(
    tmp_path: Path, minilm: MiniLMEmbedder
) -> None:
    with serve_live(tmp_path / "node", minilm) as live:
        admin = {"Authorization": f"Bearer {live.admin_token}"}
        async with httpx.AsyncClient(headers=admin) as http:
            created = (await http.post(f"{live.url}/api/v1/agents", json={"name": "remote"})).json()
        peer = McpServerSettings(name="peer", url=f"{live.url}/mcp", token=created["token"], trusted=True)
        box = McpToolbox([peer])
        async with anyio.create_task_group() as group:
            with anyio.fail_after(30):
                await group.start(box.serve)
            assert box.connected() == ["peer"]
            assert box.tools["peer__memory_search"].writes is False  # a trusted server's read-only hint
            stored = await box.tools["peer__memory_store"].run(None, {"content": "the peer's note"})  # type: ignore[arg-type]
            group.cancel_scope.cancel()
        assert stored["owner"] == "agent:remote"  # the token decides who acts
        broken = McpToolbox([McpServerSettings(name="peer", url=f"{live.url}/mcp", token="wrong")])
        async with anyio.create_task_group() as group:
            with anyio.fail_after(30):
                await group.start(broken.serve)
            assert broken.connected() == []
            group.cancel_scope.cancel()
