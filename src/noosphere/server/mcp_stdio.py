"""``noosphere mcp``: the memory tools over stdio, for clients that launch a command."""

from __future__ import annotations

from mcp.server.mcpserver import Context

from noosphere.auth.principal import Principal
from noosphere.cli.common import node_as
from noosphere.config import Settings
from noosphere.server.mcp import build_mcp


async def serve_stdio(settings: Settings, token: str | None) -> None:
    """Authenticate once (``--token`` / NOOSPHERE_TOKEN, default the admin), then serve."""
    async with node_as(settings, token) as (node, principal):

        async def fixed(_: Context) -> Principal:
            return principal

        await build_mcp(lambda: node, fixed).run_stdio_async()
