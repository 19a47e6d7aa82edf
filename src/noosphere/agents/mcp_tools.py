"""Tools from the MCP servers a node is configured to use (``runtime.mcp_servers``).

The node connects to each server with the official MCP SDK client (a subprocess over stdio, or
streamable HTTP), lists its tools and offers them to agents as ``<server>__<tool>``. A server's
hints decide how a tool is governed: ``readOnlyHint`` tools run concurrently with low impact,
``destructiveHint`` ones are high impact (a person approves them), the rest take the server's
configured impact. A server that cannot be reached or exits is retried in the background; its
tools disappear while it is away and come back when it does.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from fnmatch import fnmatchcase
from typing import Any

import anyio
import anyio.abc
import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from noosphere.agents.tools import Tool, ToolContext
from noosphere.config import McpServerSettings
from noosphere.errors import TimedOut, ToolFailed, Unavailable

logger = logging.getLogger(__name__)

SEPARATOR = "__"
_FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what OpenAI-style tool calling accepts
READ_ONLY_IMPACT = 0.2  # at most: a read-only tool is cleared without asking (below 0.3)
DESTRUCTIVE_IMPACT = 0.8  # at least: a person approves it (above 0.7)
SUBJECT_ARGUMENTS = ("command", "path", "file", "url", "query", "name")  # what rules match, first found
RETRY_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


def governed(server: McpServerSettings, tool: types.Tool) -> tuple[bool, float]:
    """(writes, impact) of ``tool`` from its hints and the server's default impact. A hint that
    lowers the bar (read-only) counts only from a server the config marks ``trusted``: anyone can
    write a server that calls its ``delete_everything`` read-only. One that raises it always counts."""
    hints = tool.annotations
    if hints is not None and hints.destructive_hint:
        return True, max(server.impact, DESTRUCTIVE_IMPACT)
    if hints is not None and hints.read_only_hint and server.trusted:
        return False, min(server.impact, READ_ONLY_IMPACT)
    return True, server.impact


def subject_of(parameters: Mapping[str, Any]) -> str | None:
    """The argument ``Tool(pattern)`` rules match: a conventional one (``command``, ``path``…), else
    the only required string argument, else none (rules then match the tool name alone)."""
    properties = parameters.get("properties") or {}
    for name in SUBJECT_ARGUMENTS:
        if name in properties:
            return name
    strings = [
        name
        for name in parameters.get("required") or []
        if isinstance(properties.get(name), dict) and properties[name].get("type") == "string"
    ]
    return strings[0] if len(strings) == 1 else None


def value_of(result: types.CallToolResult) -> Any:
    """What a tool call answered, as JSON for the model: structured content when the server sends
    it, else its text (one string, or a list when there are several parts)."""
    if result.structured_content is not None:
        return result.structured_content
    parts: list[Any] = [
        part.text if isinstance(part, types.TextContent) else part.model_dump(mode="json", exclude_none=True)
        for part in result.content
    ]
    return parts[0] if len(parts) == 1 else parts


class McpToolbox:
    """The tools of every configured MCP server, kept connected while ``serve`` runs. ``tools`` is
    live: read it at each use."""

    def __init__(self, servers: list[McpServerSettings]) -> None:
        self.servers = servers
        self.tools: dict[str, Tool] = {}
        self._clients: dict[str, Client] = {}
        self._lost: dict[str, anyio.Event] = {}

    async def serve(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Connect to every server (all at once) and stay connected; ready (``task_status``) once
        each has been tried, so a node offers the tools of reachable servers from its first run."""
        tried = [anyio.Event() for _ in self.servers]
        async with anyio.create_task_group() as group:
            for server, first_try in zip(self.servers, tried, strict=True):
                group.start_soon(self._keep, server, first_try)
            for first_try in tried:
                await first_try.wait()
            task_status.started()

    def connected(self) -> list[str]:
        return sorted(self._clients)

    async def _keep(self, server: McpServerSettings, first_try: anyio.Event) -> None:
        failures = 0
        while True:
            lost = self._lost[server.name] = anyio.Event()
            offered: list[Tool] = []
            try:
                async with self._client(server) as client:
                    offered = await self._list(server, client)
                    self._clients[server.name] = client
                    self.tools.update((tool.name, tool) for tool in offered)
                    logger.info("MCP server %s: %d tools", server.name, len(offered))
                    failures = 0
                    first_try.set()
                    await lost.wait()
            except Exception as exc:  # noqa: BLE001 - any failure of the server: keep running, retry
                logger.warning("MCP server %s: %s", server.name, str(exc) or type(exc).__name__)
            finally:
                self._clients.pop(server.name, None)
                for tool in offered:
                    self.tools.pop(tool.name, None)
            first_try.set()
            await anyio.sleep(RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)])
            failures += 1

    @staticmethod
    @asynccontextmanager
    async def _client(server: McpServerSettings) -> AsyncIterator[Client]:
        if server.command is not None:
            params = StdioServerParameters(
                command=server.command, args=server.args, env=server.env or None, cwd=server.cwd
            )
            async with Client(params, read_timeout_seconds=server.timeout_seconds) as client:
                yield client
            return
        assert server.url is not None  # the settings require one of the two
        headers = {"Authorization": f"Bearer {server.token}"} if server.token else {}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=server.timeout_seconds) as http,
            Client(
                streamable_http_client(server.url, http_client=http),
                read_timeout_seconds=server.timeout_seconds,
            ) as client,
        ):
            yield client

    async def _list(self, server: McpServerSettings, client: Client) -> list[Tool]:
        listed: list[types.Tool] = []
        cursor: str | None = None
        while True:
            page = await client.list_tools(cursor=cursor)
            listed.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                break
        offered = []
        for tool in listed:
            if not any(fnmatchcase(tool.name, glob) for glob in server.tools):
                continue
            name = server.name + SEPARATOR + tool.name
            if not _FUNCTION_NAME.match(name):
                logger.warning(
                    "MCP server %s: skipping tool %r (name unusable in tool calls)", server.name, name
                )
                continue
            offered.append(self._tool(server, tool, name))
        return offered

    def _tool(self, server: McpServerSettings, tool: types.Tool, name: str) -> Tool:
        writes, impact = governed(server, tool)
        remote = tool.name

        async def run(ctx: ToolContext, args: dict[str, Any]) -> Any:
            return await self._call(server, remote, args)

        return Tool(
            name=name,
            description=f"[{server.name}] {tool.description or tool.title or remote}",
            parameters=tool.input_schema,
            run=run,
            writes=writes,
            impact=impact,
            subject=subject_of(tool.input_schema),
            source=server.name,
        )

    async def _call(self, server: McpServerSettings, tool: str, args: dict[str, Any]) -> Any:
        client = self._clients.get(server.name)
        if client is None:
            raise Unavailable(f"MCP server {server.name!r} is not connected (reconnecting)")
        try:
            result = await client.call_tool(tool, args, read_timeout_seconds=server.timeout_seconds)
        except MCPError as exc:
            if exc.code == types.REQUEST_TIMEOUT:
                raise TimedOut(
                    f"{server.name}: {tool} took longer than {server.timeout_seconds:g} s"
                ) from exc
            if exc.code != types.CONNECTION_CLOSED:
                raise ToolFailed(f"{server.name}: {exc.error.message}") from exc
            self._lost[server.name].set()
            raise Unavailable(f"MCP server {server.name!r} went away (reconnecting)") from exc
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream, OSError) as exc:
            self._lost[server.name].set()
            raise Unavailable(f"MCP server {server.name!r} went away (reconnecting)") from exc
        if result.is_error:
            raise ToolFailed(f"{server.name}: {value_of(result)}")
        return value_of(result)


__all__ = ["McpToolbox", "governed", "subject_of", "value_of"]
