"""The memory tools (and, from ``mcp_bus``, the bus tools) over MCP (official SDK), for Streamable
HTTP at ``/mcp`` and for stdio.

Each tool parses its arguments into the same domain types as REST and calls the memory service.
The caller's principal comes from the transport (the bearer token checked by ``McpAuth`` for HTTP,
the token given to ``noosphere mcp`` for stdio), never from tool arguments.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import ValidationError
from pydantic_core import to_jsonable_python
from starlette.types import ASGIApp, Receive, Scope, Send

from noosphere.agents.runtime import Runtime
from noosphere.auth.names import SECRET_HEADER
from noosphere.auth.permissions import authorize
from noosphere.auth.principal import Principal
from noosphere.errors import NoosphereError
from noosphere.memory.model import ListQuery, MemoryDraft, MetadataValue, SearchQuery
from noosphere.node import Node
from noosphere.server.deps import bearer_token, turns_of
from noosphere.server.errors import error_body
from noosphere.server.mcp_agents import register_agent_tools
from noosphere.server.mcp_approvals import register_approval_tools
from noosphere.server.mcp_bus import register_bus_tools

PrincipalResolver = Callable[[Context], Awaitable[Principal]]
SCOPE_KEY = "noosphere.principal"


def _tool_error(exc: Exception) -> ToolError:
    if isinstance(exc, NoosphereError):
        return ToolError(f"{exc.code}: {exc.message}")
    if isinstance(exc, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors()
        )
        return ToolError(f"invalid_request: {problems}")
    raise exc


def build_mcp(
    node: Callable[[], Node], principal_of: PrincipalResolver, runtime: Callable[[], Runtime] | None = None
) -> MCPServer:
    """The MCP server; ``run_agent`` is offered where an agent runtime runs (the HTTP node, not
    the stdio server, which has no model pool)."""
    server: MCPServer = MCPServer(
        name="noosphere",
        instructions="Long-term memory shared between agents. Store facts, decisions and "
        "observations with memory_store; find them again with memory_search. Talk to other agents "
        "with bus_send and read your mailbox with bus_receive (then bus_ack).",
    )

    async def call(
        ctx: Context, tool: str, args: Mapping[str, Any], fn: Callable[[Principal], Awaitable[Any]]
    ) -> Any:
        """Run a tool as the transport's principal, if the authorization table lets it, through
        the governance gate (policy, a person's approval where a rule asks, audit)."""
        try:
            principal = await principal_of(ctx)
            authorize("mcp", tool, principal)
            return await node().governor.run(
                principal, tool, to_jsonable_python(args), lambda: fn(principal), _session(ctx)
            )
        except (NoosphereError, ValidationError) as exc:
            raise _tool_error(exc) from exc

    @server.tool()
    async def memory_store(
        ctx: Context,
        content: str,
        zone: str = "private",
        kind: str = "fact",
        tags: list[str] | None = None,
        metadata: dict[str, MetadataValue] | None = None,
        expires_at: datetime | None = None,
        supersedes: str | None = None,
        thread_id: str | None = None,
        importance: float = 0.5,
    ) -> dict[str, Any]:
        """Remember something. zone: private (only you), shared (this node), federated (peers too).
        Storing the exact same content again returns the existing memory. Pass `supersedes`
        with the id of an older memory this one corrects."""

        args = dict(
            content=content,
            zone=zone,
            kind=kind,
            tags=tags,
            metadata=metadata,
            expires_at=expires_at,
            supersedes=supersedes,
            thread_id=thread_id,
            importance=importance,
        )

        async def run(p: Principal) -> dict[str, Any]:
            draft = MemoryDraft.model_validate({**args, "tags": tags or [], "metadata": metadata or {}})
            return (await node().memory.store_one(p, draft)).model_dump(mode="json")

        result: dict[str, Any] = await call(ctx, "memory_store", args, run)
        return result

    @server.tool()
    async def memory_store_many(ctx: Context, items: list[dict[str, Any]]) -> dict[str, Any]:
        """Remember several things in one transaction. Each item has the fields of memory_store."""

        async def run(p: Principal) -> dict[str, Any]:
            drafts = [MemoryDraft.model_validate(item) for item in items]
            stored = await node().memory.store_many(p, drafts)
            return {"items": [m.model_dump(mode="json") for m in stored]}

        result: dict[str, Any] = await call(ctx, "memory_store_many", {"items": items}, run)
        return result

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    async def memory_search(
        ctx: Context,
        query: str,
        limit: int = 10,
        zones: list[str] | None = None,
        kinds: list[str] | None = None,
        tags: list[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        metadata: dict[str, MetadataValue] | None = None,
        thread_id: str | None = None,
        owner: str | None = None,
        include_invalid: bool = False,
        include_federation: bool = False,
        verbose: bool = False,
    ) -> dict[str, Any]:
        """Find memories by meaning and keywords. Each hit: id, content, kind, tags, thread, date
        (when it was said or became true, UTC), score. Filters narrow the search (all must hold);
        include_invalid also returns older versions (marked superseded); include_federation also
        asks federated peer nodes (each hit's source names the node it came from); verbose
        returns every field of each memory."""

        args = dict(
            query=query,
            limit=limit,
            zones=zones,
            kinds=kinds,
            tags=tags,
            since=since,
            until=until,
            metadata=metadata,
            thread_id=thread_id,
            owner=owner,
            include_invalid=include_invalid,
            include_federation=include_federation,
        )

        async def run(p: Principal) -> dict[str, Any]:
            q = SearchQuery.model_validate(args)
            hits = await node().memory.search(p, q)
            return {"hits": [h.model_dump(mode="json") if verbose else h.compact() for h in hits]}

        result: dict[str, Any] = await call(ctx, "memory_search", args, run)
        return result

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    async def memory_get(ctx: Context, id: str) -> dict[str, Any]:
        """Fetch one memory by id."""

        async def run(p: Principal) -> dict[str, Any]:
            return (await node().memory.get(p, id)).model_dump(mode="json")

        result: dict[str, Any] = await call(ctx, "memory_get", {"id": id}, run)
        return result

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    async def memory_list(
        ctx: Context,
        limit: int = 50,
        cursor: int | None = None,
        zones: list[str] | None = None,
        kinds: list[str] | None = None,
        tags: list[str] | None = None,
        thread_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        owner: str | None = None,
        metadata: dict[str, MetadataValue] | None = None,
        include_invalid: bool = False,
    ) -> dict[str, Any]:
        """List memories in the order they were written; pass next_cursor to continue."""

        args = dict(
            limit=limit,
            cursor=cursor,
            zones=zones,
            kinds=kinds,
            tags=tags,
            thread_id=thread_id,
            since=since,
            until=until,
            owner=owner,
            metadata=metadata,
            include_invalid=include_invalid,
        )

        async def run(p: Principal) -> dict[str, Any]:
            q = ListQuery.model_validate(args)
            return (await node().memory.list_memories(p, q)).model_dump(mode="json")

        result: dict[str, Any] = await call(ctx, "memory_list", args, run)
        return result

    @server.tool()
    async def memory_update(ctx: Context, id: str, content: str) -> dict[str, Any]:
        """Correct or update a memory: a new version with this content (everything else kept)
        that supersedes the old one, which memory_history still shows. Returns the new version."""

        async def run(p: Principal) -> dict[str, Any]:
            return (await node().memory.update(p, id, content)).compact()

        result: dict[str, Any] = await call(ctx, "memory_update", {"id": id, "content": content}, run)
        return result

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    async def memory_history(ctx: Context, id: str, verbose: bool = False) -> dict[str, Any]:
        """Every version of a memory, oldest first (older ones marked superseded)."""

        async def run(p: Principal) -> dict[str, Any]:
            versions = await node().memory.history(p, id)
            return {"versions": [m.model_dump(mode="json") if verbose else m.compact() for m in versions]}

        result: dict[str, Any] = await call(ctx, "memory_history", {"id": id}, run)
        return result

    @server.tool(annotations=ToolAnnotations(destructive_hint=True))
    async def memory_forget(ctx: Context, id: str) -> dict[str, Any]:
        """Forget a memory for good (your own memories only)."""

        async def run(p: Principal) -> dict[str, Any]:
            await node().memory.forget(p, id)
            return {"forgotten": id}

        result: dict[str, Any] = await call(ctx, "memory_forget", {"id": id}, run)
        return result

    register_bus_tools(server, node, call)
    register_approval_tools(server, node, call)
    if runtime is not None:
        register_agent_tools(server, runtime, call)
    return server


def _session(ctx: Context) -> str | None:
    """The MCP session of a Streamable HTTP call ("approve for the session" covers it); None on
    stdio."""
    request = ctx.request_context.request
    headers = getattr(request, "headers", None)
    return None if headers is None else headers.get("mcp-session-id")


async def principal_from_http(ctx: Context) -> Principal:
    """The principal ``McpAuth`` put into the ASGI scope of the HTTP request."""
    request = ctx.request_context.request
    scope = getattr(request, "scope", None) or {}
    principal = scope.get(SCOPE_KEY)
    if not isinstance(principal, Principal):
        raise ToolError("unauthenticated: missing bearer token")
    return principal


class McpAuth:
    """ASGI wrapper for the MCP endpoint: bearer token → principal in the scope; refuses
    browser origins that are not localhost (DNS-rebinding and cross-site protection)."""

    def __init__(self, app: ASGIApp, node: Callable[[], Node]) -> None:
        self.app = app
        self.node = node

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"].rstrip("/") != "/mcp":
            await _reject(send, 404, "not_found", "Not Found")
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        origin = headers.get("origin")
        if origin is not None and not _is_local_origin(origin):
            await _reject(send, 403, "forbidden_origin", "MCP requests from this origin are refused")
            return
        try:
            principal = await self.node().authenticate(
                bearer_token(headers.get("authorization")), headers.get(SECRET_HEADER)
            )
            authorize("http", f"{scope['method']} /mcp", principal)
        except NoosphereError as exc:
            await _reject(send, exc.status, exc.code, exc.message)
            return
        turns_of(scope["app"]).call_arrived()  # chats make way for it (``interactive.py``)
        await self.app({**scope, SCOPE_KEY: principal}, receive, send)


def _is_local_origin(origin: str) -> bool:
    from urllib.parse import urlsplit

    host = urlsplit(origin).hostname or ""
    return host in {"localhost", "127.0.0.1", "::1"}


async def _reject(send: Send, status: int, code: str, message: str) -> None:
    import json

    body = json.dumps(error_body(code, message)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
