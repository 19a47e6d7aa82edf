"""REST: agents (profiles, admin only), running an agent on a task (people; streamed as
server-sent events or answered whole), and delegated tasks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from noosphere.agents.loop import Event, RunResult
from noosphere.agents.profile import AgentProfile
from noosphere.agents.runtime import Runtime
from noosphere.auth.principal import Principal, PrincipalKind, principal_id
from noosphere.errors import NoosphereError
from noosphere.server.deps import NodeDep, PrincipalDep, RuntimeDep
from noosphere.server.errors import error_body
from noosphere.server.openai_wire import sse
from noosphere.store.contract import TaskRecord

router = APIRouter(prefix="/api/v1", tags=["agents"])


class AgentOut(AgentProfile):
    id: str


class CreatedAgent(AgentOut):
    token: str = Field(description="Shown once.")


class RunIn(BaseModel):
    task: str = Field(min_length=1, max_length=20_000)
    session: str | None = Field(None, max_length=128, description="Default: a new session per run.")
    stream: bool = Field(True, description="Stream progress as server-sent events.")


class ToolOut(BaseModel):
    name: str
    description: str
    source: str = Field(description="`builtin`, or the MCP server the tool comes from.")
    writes: bool = Field(description="Has side effects (runs alone, in order).")
    impact: float = Field(description="Estimated impact, 0 (harmless) to 1 (irreversible).")
    parameters: dict[str, Any]


def _out(profile: AgentProfile) -> AgentOut:
    return AgentOut(id=principal_id(PrincipalKind.AGENT, profile.name), **profile.model_dump())


@router.get("/tools", summary="Tools agents may be offered now (built-in and from MCP servers)")
async def list_tools(runtime: RuntimeDep) -> list[ToolOut]:
    return [
        ToolOut(
            name=tool.name,
            description=tool.description,
            source=tool.source,
            writes=tool.writes,
            impact=tool.impact,
            parameters=dict(tool.parameters),
        )
        for tool in sorted(runtime.tools.values(), key=lambda t: (t.source != "builtin", t.name))
    ]


@router.post("/agents", status_code=201, summary="Create an agent; returns its token once")
async def create_agent(body: AgentProfile, node: NodeDep) -> CreatedAgent:
    profile, token = await node.agents.create(body)
    return CreatedAgent(token=token, **_out(profile).model_dump())


@router.get("/agents", summary="List agents with their profiles")
async def list_agents(node: NodeDep) -> list[AgentOut]:
    return [_out(p) for p in await node.agents.every()]


@router.get("/agents/{name}", summary="One agent's profile")
async def get_agent(name: str, node: NodeDep) -> AgentOut:
    return _out(await node.agents.get(name))


@router.delete("/agents/{name}", status_code=204, summary="Delete an agent with everything it owned")
async def delete_agent(name: str, node: NodeDep) -> None:
    await node.remove(PrincipalKind.AGENT, name)


@router.post(
    "/agents/{name}/run",
    summary="Run an agent on a task (people only)",
    response_model=None,
    responses={
        200: {
            "description": "Progress as server-sent events (`stream: true`), or the run's result as JSON",
            "content": {"text/event-stream": {}, "application/json": {}},
        }
    },
)
async def run_agent(
    name: str, body: RunIn, runtime: RuntimeDep, caller: PrincipalDep
) -> StreamingResponse | RunResult:
    args = {"agent": name, "task": body.task, "session": body.session}
    if not body.stream:

        async def whole() -> RunResult:
            await runtime.admit(caller, name)
            return await runtime.run(name, body.task, body.session, payer=caller)

        return await runtime.node.governor.run(caller, "run_agent", args, whole)
    # Streamed: the run is cleared and audited as it starts; its own tool calls are audited one by one.
    await runtime.node.governor.run(caller, "run_agent", args, lambda: runtime.admit(caller, name))
    return StreamingResponse(
        _events(runtime, name, body, caller),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache"},
    )


async def _events(runtime: Runtime, name: str, body: RunIn, caller: Principal) -> AsyncIterator[bytes]:
    send, receive = anyio.create_memory_object_stream[dict[str, Any]](100)

    async def emit(event: Event) -> None:
        await send.send(event.as_dict())

    async def work() -> None:
        async with send:
            try:
                await runtime.run(name, body.task, body.session, emit, payer=caller)
            except NoosphereError as exc:
                await send.send(error_body(exc.code, exc.message))

    async with anyio.create_task_group() as group, receive:
        group.start_soon(work)
        async for item in receive:
            yield sse(item)
        yield sse("[DONE]")


@router.get("/tasks", summary="Delegated tasks, newest first")
async def list_tasks(
    runtime: RuntimeDep,
    agent: str | None = Query(None, description="Tasks this agent delegated or was given."),
    limit: int = Query(50, ge=1, le=1000),
) -> list[TaskRecord]:
    return await runtime.delegation.recent(agent, limit)


@router.get("/tasks/{task_id}", summary="One delegated task and its state")
async def get_task(task_id: str, runtime: RuntimeDep, caller: PrincipalDep) -> TaskRecord:
    return await runtime.delegation.get_for(caller, task_id)
