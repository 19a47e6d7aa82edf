"""The approval tools over MCP, for a person's MCP client (the admin's or a user's token): list
pending human checkpoints and decide them. Agents' calls are refused by the service."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import ToolAnnotations

from noosphere.auth.principal import Principal
from noosphere.governance.checkpoints import Scope, Status, Verdict
from noosphere.node import Node
from noosphere.server.approvals_api import ApprovalOut
from noosphere.server.mcp_bus import Call


def register_approval_tools(server: MCPServer, node: Callable[[], Node], call: Call) -> None:
    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    async def approvals_list(
        ctx: Context, status: Status | None = Status.PENDING, limit: int = 50
    ) -> dict[str, Any]:
        """List human checkpoints, newest first (pending ones by default; status null for all)."""

        async def run(p: Principal) -> dict[str, Any]:
            records = await node().checkpoints.recent_for(p, status, limit)
            return {"approvals": [ApprovalOut.of(r).model_dump(mode="json") for r in records]}

        result: dict[str, Any] = await call(ctx, "approvals_list", {"status": status, "limit": limit}, run)
        return result

    @server.tool()
    async def approval_decide(
        ctx: Context, id: str, verdict: Verdict, scope: Scope = Scope.ONCE, note: str | None = None
    ) -> dict[str, Any]:
        """Decide a pending checkpoint: approve (scope once, session or always), reject, or
        escalate to the admin. Only people decide; the decision is audited."""

        async def run(p: Principal) -> dict[str, Any]:
            record = await node().checkpoints.decide(id, p, verdict, scope, note)
            return ApprovalOut.of(record).model_dump(mode="json")

        result: dict[str, Any] = await call(
            ctx, "approval_decide", {"id": id, "verdict": verdict, "scope": scope, "note": note}, run
        )
        return result
