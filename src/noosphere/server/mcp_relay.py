"""``noosphere mcp`` beside a running node: the MCP client's stdio relayed to the node's own
``/mcp`` (Streamable HTTP) with the caller's token, message by message. The node serves the tools,
so a stdio client and an HTTP client see one node: the same policy gate, audit log, caches and
metrics, and nothing is written to the data directory from a second process."""

from __future__ import annotations

from typing import Any

import anyio
import httpx2
from anyio.abc import TaskGroup
from mcp.client.streamable_http import streamable_http_client
from mcp.server.stdio import stdio_server

from noosphere.cli.client import headers_for

# How long the node may take to answer one message (a tool that runs an agent streams for long).
READ_SECONDS = 3600.0


async def _pump(source: Any, sink: Any, group: TaskGroup) -> None:
    """Forward every message until ``source`` ends, then end the relay (the streams are the MCP
    SDK's: ``SessionMessage`` or the ``Exception`` of a frame it could not read)."""
    async for item in source:
        if isinstance(item, Exception):  # nothing to pass on
            continue
        await sink.send(item)
    group.cancel_scope.cancel()


async def relay(url: str, token: str) -> None:
    """Serve stdio by relaying it to ``url``/mcp until the client closes stdin."""
    headers = headers_for(token)  # the token, and the conversation secret from the environment
    timeout = httpx2.Timeout(30.0, read=READ_SECONDS)
    async with (
        httpx2.AsyncClient(headers=headers, timeout=timeout) as http,
        streamable_http_client(f"{url.rstrip('/')}/mcp", http_client=http) as (from_node, to_node),
        stdio_server() as (from_client, to_client),
        anyio.create_task_group() as group,
    ):
        group.start_soon(_pump, from_client, to_node, group)
        group.start_soon(_pump, from_node, to_client, group)


__all__ = ["relay"]
