"""``run_agent`` over MCP: a person's MCP client runs an agent of the node on a task. Progress
goes out as MCP progress notifications, when the client asked for them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from mcp.server.mcpserver import Context, MCPServer

from noosphere.agents.loop import Event
from noosphere.agents.runtime import Runtime
from noosphere.auth.principal import Principal
from noosphere.server.mcp_bus import Call


def _describe(event: Event) -> str:
    data = event.data
    if event.type == "tool_started":
        return f"calling {data['tool']}"
    if event.type == "tool_finished":
        return f"{data['tool']}: {data['outcome']}"
    if event.type == "approval_waiting":
        return f"{data['tool']} is waiting for a person: approval {data['approval_id']}"
    if event.type == "step":
        return f"step {data['step']} ({data['tokens']} tokens)"
    return event.type


def register_agent_tools(server: MCPServer, runtime: Callable[[], Runtime], call: Call) -> None:
    @server.tool()
    async def run_agent(ctx: Context, agent: str, task: str, session: str | None = None) -> dict[str, Any]:
        """Run one of the node's agents on a task until it answers (people only). Its tool calls
        pass policy, may wait for a human approval, and are audited. Returns its answer, status,
        steps, tokens and calls."""

        async def run(p: Principal) -> dict[str, Any]:
            await runtime().admit(p, agent)
            steps = 0

            async def emit(event: Event) -> None:
                nonlocal steps
                steps += event.type == "step"
                await ctx.report_progress(steps, None, _describe(event))

            return asdict(await runtime().run(agent, task, session, emit, payer=p))

        result: dict[str, Any] = await call(
            ctx, "run_agent", {"agent": agent, "task": task, "session": session}, run
        )
        return result
