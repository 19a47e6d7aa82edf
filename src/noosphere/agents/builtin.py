"""The tools every node offers its agents: memory, messages, delegation and escalation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from noosphere.agents.delegation import HUMANS, Delegation, level_above
from noosphere.agents.registry import AgentRegistry
from noosphere.agents.tools import Tool, ToolContext, schema
from noosphere.bus import Bus, Envelope, Kind
from noosphere.errors import InvalidRequest
from noosphere.memory.model import MemoryDraft, SearchQuery, Zone
from noosphere.memory.service import MemoryService

_TEXT = {"type": "string", "minLength": 1}


def _zones(ctx: ToolContext) -> list[str]:
    return [z.value for z in ctx.agent.zones]


def memory_tools(memory: MemoryService) -> list[Tool]:
    async def search(ctx: ToolContext, args: dict[str, Any]) -> Any:
        query = SearchQuery(query=args["query"], limit=args.get("limit", 5), zones=list(ctx.agent.zones))
        hits = await memory.search(ctx.principal, query)
        return [{"id": h.memory.id, "content": h.memory.content, "kind": h.memory.kind} for h in hits]

    async def store(ctx: ToolContext, args: dict[str, Any]) -> Any:
        zone = Zone(args.get("zone") or ctx.agent.zones[0])
        if zone not in ctx.agent.zones:
            raise InvalidRequest(f"{ctx.agent.name} does not work in the {zone} zone")
        draft = MemoryDraft(content=args["content"], kind=args.get("kind", "observation"), zone=zone)
        stored = await memory.store_one(ctx.principal, draft.model_copy(update={"thread_id": ctx.session}))
        return {"id": stored.id, "zone": stored.zone}

    async def forget(ctx: ToolContext, args: dict[str, Any]) -> Any:
        await memory.forget(ctx.principal, args["id"])
        return {"forgotten": args["id"]}

    def store_schema(ctx: ToolContext) -> Mapping[str, Any]:
        return schema(
            ["content"],
            content=_TEXT,
            kind={"type": "string", "enum": ["fact", "decision", "observation", "pattern", "error"]},
            zone={"type": "string", "enum": _zones(ctx)},
        )

    return [
        Tool(
            "memory_search",
            "Search your memories (and the shared ones) for what is relevant.",
            schema(["query"], query=_TEXT, limit={"type": "integer", "minimum": 1, "maximum": 20}),
            search,
            writes=False,
            impact=0.0,
            subject="query",
        ),
        Tool(
            "memory_store",
            "Remember something for later (a fact, a decision, an observation).",
            schema(["content"], content=_TEXT, kind=_TEXT, zone=_TEXT),
            store,
            impact=0.2,
            subject="zone",
            schema_for=store_schema,
        ),
        Tool(
            "memory_forget",
            "Forget one of your memories by id.",
            schema(id=_TEXT),
            forget,
            impact=0.6,
            subject="id",
        ),
    ]


def message_tools(bus: Bus) -> list[Tool]:
    async def send(ctx: ToolContext, args: dict[str, Any]) -> Any:
        envelope = Envelope(
            Kind.REQUEST, ctx.principal.mailbox, {"text": args["text"]}, recipient=args["recipient"]
        )
        sent = await bus.deliver(envelope.checked())
        return {"id": sent.id, "delivered_to": sent.delivered_to}

    async def publish(ctx: ToolContext, args: dict[str, Any]) -> Any:
        envelope = Envelope(Kind.EVENT, ctx.principal.mailbox, {"text": args["text"]}, topic=args["topic"])
        sent = await bus.deliver(envelope.checked())
        return {"id": sent.id, "delivered_to": sent.delivered_to}

    return [
        Tool(
            "send_message",
            "Send a message to another agent's mailbox (or a person's: admin, user:NAME).",
            schema(recipient=_TEXT, text=_TEXT),
            send,
            impact=0.2,
            subject="recipient",
        ),
        Tool(
            "publish",
            "Publish an event to a topic (e.g. builds.done) for whoever subscribed.",
            schema(topic=_TEXT, text=_TEXT),
            publish,
            impact=0.2,
            subject="topic",
        ),
    ]


def delegation_tools(
    delegation: Delegation, registry: AgentRegistry, bus: Bus, within_seconds: float
) -> list[Tool]:
    async def delegate(ctx: ToolContext, args: dict[str, Any]) -> Any:
        record = await delegation.delegate(
            ctx.agent, args["agent"], args["task"], args.get("needs", ()), ctx.session
        )
        settled = await delegation.wait(record.id, within_seconds)
        return {"task_id": settled.id, "status": settled.status, "result": settled.result}

    def delegate_schema(ctx: ToolContext) -> Mapping[str, Any]:
        return schema(
            ["agent", "task"],
            agent={"type": "string", "enum": list(ctx.delegates)},
            task=_TEXT,
            needs={"type": "array", "items": {"type": "string"}},
        )

    async def escalate(ctx: ToolContext, args: dict[str, Any]) -> Any:
        above = level_above(ctx.agent.level)
        target = HUMANS
        if above is not None:
            candidates = [a.name for a in await registry.every() if a.level is above]
            target = candidates[0] if candidates else HUMANS
        payload = {"reason": args["reason"], "run_id": ctx.run_id, "level": ctx.agent.level.value}
        await bus.send(Envelope(Kind.ESCALATE, ctx.principal.mailbox, payload, recipient=target, priority=8))
        return {"escalated_to": target}

    return [
        Tool(
            "delegate",
            "Give a task to an agent of a lower level and wait for its result.",
            schema(["agent", "task"], agent=_TEXT, task=_TEXT, needs={"type": "array"}),
            delegate,
            impact=0.2,
            subject="agent",
            schema_for=delegate_schema,
        ),
        Tool(
            "escalate",
            "Pass something beyond your level or capabilities up: to the level above, or to a person.",
            schema(reason=_TEXT),
            escalate,
            impact=0.1,
            subject=None,
        ),
    ]


__all__ = ["delegation_tools", "memory_tools", "message_tools"]
