"""The bus tools over MCP: an MCP client (Claude Code, Cursor, a bot) sends and receives as the
principal of its token, through the same access rules as REST (``noosphere.bus.access``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from mcp.server.mcpserver import Context, MCPServer

from noosphere.auth.principal import Principal
from noosphere.bus import Kind
from noosphere.bus.access import check_caller, envelope_from, own_mailbox
from noosphere.bus.envelope import DEFAULT_PRIORITY
from noosphere.node import Node

Call = Callable[[Context, str, Mapping[str, Any], Callable[[Principal], Awaitable[Any]]], Awaitable[Any]]


def register_bus_tools(server: MCPServer, node: Callable[[], Node], call: Call) -> None:
    @server.tool()
    async def bus_send(
        ctx: Context,
        kind: Kind,
        payload: dict[str, Any] | None = None,
        recipient: str | None = None,
        topic: str | None = None,
        priority: int = DEFAULT_PRIORITY,
        ttl_seconds: float | None = None,
        correlation_id: str | None = None,
    ) -> dict[str, Any]:
        """Send a message to a mailbox (an agent's name) or publish it to a topic (give exactly
        one). priority: 0-9, higher first. Returns the message id and the mailboxes it reached."""

        args = dict(
            kind=kind,
            payload=payload,
            recipient=recipient,
            topic=topic,
            priority=priority,
            ttl_seconds=ttl_seconds,
            correlation_id=correlation_id,
        )

        async def run(p: Principal) -> dict[str, Any]:
            envelope = envelope_from(
                p,
                kind,
                payload or {},
                recipient=recipient,
                topic=topic,
                priority=priority,
                ttl_seconds=ttl_seconds,
                correlation_id=correlation_id,
            )
            sent = await node().bus.deliver(envelope)
            return {"id": sent.id, "delivered_to": sent.delivered_to}

        result: dict[str, Any] = await call(ctx, "bus_send", args, run)
        return result

    @server.tool()
    async def bus_receive(ctx: Context, limit: int = 10, wait_seconds: float = 0.0) -> dict[str, Any]:
        """Take messages from your own mailbox, highest priority first. Acknowledge each with
        bus_ack once handled, or it is delivered again after its lease."""

        async def run(p: Principal) -> dict[str, Any]:
            box = own_mailbox(p, p.mailbox)
            got = await node().bus.receive(box, limit, wait_seconds)
            return {"messages": [{"attempt": d.attempt, **orjson.loads(d.envelope.to_json())} for d in got]}

        result: dict[str, Any] = await call(
            ctx, "bus_receive", {"limit": limit, "wait_seconds": wait_seconds}, run
        )
        return result

    @server.tool()
    async def bus_ack(ctx: Context, ids: list[str]) -> dict[str, int]:
        """Mark received messages as handled, so they are not delivered again."""

        async def run(p: Principal) -> dict[str, int]:
            return {"settled": await node().bus.ack(own_mailbox(p, p.mailbox), ids)}

        result: dict[str, int] = await call(ctx, "bus_ack", {"ids": ids}, run)
        return result

    @server.tool()
    async def bus_subscribe(ctx: Context, pattern: str) -> dict[str, str]:
        """Subscribe your mailbox to a topic pattern: `*` one token, `>` the rest (e.g. `builds.>`)."""

        async def run(p: Principal) -> dict[str, str]:
            await node().bus.subscribe(check_caller(p).mailbox, pattern)
            return {"subscribed": pattern}

        result: dict[str, str] = await call(ctx, "bus_subscribe", {"pattern": pattern}, run)
        return result
