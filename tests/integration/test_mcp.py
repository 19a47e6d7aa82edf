"""The memory tools through the official MCP client, over Streamable HTTP and over stdio."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from tests.integration.conftest import Live

TOOLS = {
    "memory_store",
    "memory_store_many",
    "memory_search",
    "memory_get",
    "memory_list",
    "memory_forget",
    "memory_update",
    "memory_history",
}


def _agent(live: Live, name: str) -> str:
    response = httpx.post(
        f"{live.url}/api/v1/agents",
        json={"name": name},
        headers={"Authorization": f"Bearer {live.admin_token}"},
    )
    token: str = response.json()["token"]
    return token


Approve = Callable[[str], Awaitable[None]]


async def _exercise(client: Client, approve: Approve) -> dict[str, Any]:
    tools = {t.name for t in (await client.list_tools()).tools}
    assert tools >= TOOLS
    stored = await client.call_tool(
        "memory_store",
        {
            "content": "The staging database lives on db-staging-2",
            "zone": "shared",
            "tags": ["infra"],
        },
    )
    assert not stored.is_error, stored.content
    memory = stored.structured_content
    assert memory is not None
    many = await client.call_tool(
        "memory_store_many",
        {
            "items": [
                {"content": "Use pnpm, not npm, in the web repo", "kind": "decision"},
                {"content": "Standup moved to 9:30"},
            ]
        },
    )
    assert not many.is_error
    found = await client.call_tool("memory_search", {"query": "where is the staging database?", "limit": 3})
    assert found.structured_content is not None
    top = found.structured_content["hits"][0]
    # Compact for a language model: no hashes, clocks or flags unless asked for.
    assert top["id"] == memory["id"] and set(top) == {"id", "content", "kind", "tags", "date", "score"}
    verbose = await client.call_tool(
        "memory_search", {"query": "staging database", "limit": 1, "verbose": True}
    )
    assert verbose.structured_content is not None
    assert {"content_hash", "hlc", "encrypted"} <= set(verbose.structured_content["hits"][0]["memory"])
    narrowed = await client.call_tool("memory_search", {"query": "repo", "kinds": ["decision"]})
    assert narrowed.structured_content is not None
    assert [h["kind"] for h in narrowed.structured_content["hits"]] == ["decision"]
    assert many.structured_content is not None
    standup = many.structured_content["items"][1]["id"]
    updated = await client.call_tool("memory_update", {"id": standup, "content": "Standup moved to 10:00"})
    assert not updated.is_error, updated.content
    assert updated.structured_content is not None
    history = await client.call_tool("memory_history", {"id": standup})
    assert history.structured_content is not None
    versions = history.structured_content["versions"]
    assert [(v["content"], v.get("superseded", False)) for v in versions] == [
        ("Standup moved to 9:30", True),
        ("Standup moved to 10:00", False),
    ]
    stale = await client.call_tool("memory_update", {"id": standup, "content": "Standup at 11"})
    assert stale.is_error and "conflict" in stale.content[0].text  # type: ignore[union-attr]
    got = await client.call_tool("memory_get", {"id": memory["id"]})
    assert got.structured_content is not None
    assert got.structured_content["tags"] == ["infra"]
    listed = await client.call_tool("memory_list", {"limit": 10})
    assert listed.structured_content is not None
    assert len(listed.structured_content["items"]) == 3  # the superseded version is not current
    bad = await client.call_tool("memory_store", {"content": "x", "zone": "everyone"})
    assert bad.is_error
    assert "invalid_request" in bad.content[0].text  # type: ignore[union-attr]
    # Forgetting (impact 0.6) by an agent's token waits for a person, as inside the node.
    asked = await client.call_tool("memory_forget", {"id": memory["id"]})
    assert asked.is_error
    found_id = re.search(r"approval ([0-9a-f]{16})", asked.content[0].text)  # type: ignore[union-attr]
    assert found_id is not None, asked.content
    await approve(found_id[1])
    forgotten = await client.call_tool("memory_forget", {"id": memory["id"]})
    assert not forgotten.is_error, forgotten.content
    missing = await client.call_tool("memory_get", {"id": memory["id"]})
    assert missing.is_error
    assert "not_found" in missing.content[0].text  # type: ignore[union-attr]
    return memory


async def _approve(live: Live, approval: str) -> None:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {live.admin_token}"}) as http:
        response = await http.post(f"{live.url}/api/v1/approvals/{approval}/approve", json={})
        assert response.status_code == 200, response.text


async def test_tools_over_streamable_http_with_bearer_auth(live: Live) -> None:
    token = _agent(live, "claude")
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http,
        Client(streamable_http_client(f"{live.url}/mcp", http_client=http)) as client,
    ):
        memory = await _exercise(client, lambda approval: _approve(live, approval))
    assert memory["owner"] == "agent:claude"


async def test_http_scope_comes_from_the_token_not_the_arguments(live: Live) -> None:
    alice, mallory = _agent(live, "alice"), _agent(live, "mallory")
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {alice}"}) as http,
        Client(streamable_http_client(f"{live.url}/mcp", http_client=http)) as client,
    ):
        secret = await client.call_tool("memory_store", {"content": "alice's private plan"})
        assert secret.structured_content is not None
        secret_id = secret.structured_content["id"]
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {mallory}"}) as http,
        Client(streamable_http_client(f"{live.url}/mcp", http_client=http)) as client,
    ):
        found = await client.call_tool("memory_search", {"query": "alice private plan", "zones": ["private"]})
        assert found.structured_content == {"hits": []}
        stolen = await client.call_tool("memory_get", {"id": secret_id})
        assert stolen.is_error
        # An "owner" argument is not part of the tool: it is dropped, the caller owns the memory.
        forged = await client.call_tool("memory_store", {"content": "x", "owner": "agent:alice"})
        assert forged.structured_content is not None
        assert forged.structured_content["owner"] == "agent:mallory"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong"}, 401),
        ({"Origin": "https://evil.example"}, 403),
    ],
)
def test_http_endpoint_refuses_missing_tokens_and_foreign_origins(
    live: Live, headers: dict[str, str], status: int
) -> None:
    if "Origin" in headers:
        headers = {**headers, "Authorization": f"Bearer {live.admin_token}"}
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    response = httpx.post(
        f"{live.url}/mcp", json=body, headers={**headers, "Accept": "application/json, text/event-stream"}
    )
    assert response.status_code == status
    assert "error" in response.json()


async def test_tools_over_stdio(tmp_path: Path) -> None:
    data_dir = tmp_path / "stdio-node"
    env = {**os.environ, "NOOSPHERE_DATA_DIR": str(data_dir)}
    created = subprocess.run(  # noqa: ASYNC221 - setup before the client starts
        [sys.executable, "-m", "noosphere", "agent", "create", "cursor", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    token = json.loads(created.stdout)["token"]
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "noosphere", "mcp"],
        env={**env, "NOOSPHERE_TOKEN": token},
    )

    async def approve(approval: str) -> None:
        subprocess.run(  # noqa: ASYNC221 - the CLI, as a person runs it
            [sys.executable, "-m", "noosphere", "approvals", "approve", approval],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )

    async with Client(params) as client:
        memory = await _exercise(client, approve)
    assert memory["owner"] == "agent:cursor"


async def test_bus_tools_send_as_the_token_and_read_only_its_own_mailbox(live: Live) -> None:
    planner, coder = _agent(live, "planner"), _agent(live, "coder")
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {planner}"}) as http,
        Client(streamable_http_client(f"{live.url}/mcp", http_client=http)) as client,
    ):
        sent = await client.call_tool(
            "bus_send",
            {"kind": "TASK_DELEGATE", "recipient": "coder", "payload": {"task": "fix"}, "priority": 8},
        )
        assert sent.structured_content is not None
        assert sent.structured_content["delivered_to"] == ["coder"]
        bad = await client.call_tool("bus_send", {"kind": "EVENT", "recipient": "coder", "topic": "t"})
        assert bad.is_error
        assert "invalid_request" in bad.content[0].text  # type: ignore[union-attr]
        mine = await client.call_tool("bus_receive", {})
        assert mine.structured_content == {"messages": []}  # the planner's mailbox, not the coder's
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {coder}"}) as http,
        Client(streamable_http_client(f"{live.url}/mcp", http_client=http)) as client,
    ):
        got = await client.call_tool("bus_receive", {"wait_seconds": 1})
        assert got.structured_content is not None
        (message,) = got.structured_content["messages"]
        assert (message["sender"], message["payload"], message["attempt"]) == ("planner", {"task": "fix"}, 1)
        acked = await client.call_tool("bus_ack", {"ids": [message["id"]]})
        assert acked.structured_content == {"settled": 1}
