"""The agent runtime on a real node (store, bus, policy, checkpoints, audit) with a scripted model."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest

from noosphere.agents.loop import Event, batches
from noosphere.agents.model import Reply
from noosphere.agents.profile import AgentProfile
from noosphere.agents.runtime import Runtime
from noosphere.agents.tools import Tool, ToolContext, schema
from noosphere.auth.principal import ADMIN_ID, Level, Principal, PrincipalKind
from noosphere.config import Settings
from noosphere.embeddings.minilm import MiniLMEmbedder
from noosphere.governance.checkpoints import Status, Verdict
from noosphere.node import Node, open_node
from noosphere.testing import ScriptedModel, call

ADMIN = Principal(ADMIN_ID, PrincipalKind.ADMIN, ADMIN_ID)


@pytest.fixture
async def node(settings: Settings, minilm: MiniLMEmbedder) -> AsyncIterator[Node]:
    rules = {"ask": ["shell(deploy:*)"], "deny": ["shell(rm:*)"]}
    governed = settings.model_copy(
        update={"governance": settings.governance.model_copy(update={"rules": rules})}
    )
    async with open_node(governed, embedder=minilm) as opened:
        yield opened


def runtime(node: Node, scripts: dict[str, list[Reply]], *tools: Tool) -> tuple[Runtime, ScriptedModel]:
    model = ScriptedModel(scripts)
    return Runtime(node, model, "fake", node.settings.runtime, tools), model


def shell(log: list[str]) -> Tool:
    async def run(ctx: ToolContext, args: dict[str, Any]) -> Any:
        log.append(args["command"])
        return {"ran": args["command"]}

    return Tool(
        "shell", "Run a command.", schema(command={"type": "string"}), run, impact=0.5, subject="command"
    )


async def audit(node: Node) -> list[dict[str, Any]]:
    await node.audit.close()
    return [json.loads(e.entry) for e in await node.store.audit_entries()]


@pytest.mark.parametrize(
    ("writes", "expected"),
    [
        ([], []),
        ([False, False, False], [[0, 1, 2]]),
        ([True, True], [[0], [1]]),
        ([False, False, True, False, None, False], [[0, 1], [2], [3], [4], [5]]),
    ],
)
def test_read_only_calls_batch_together_and_writes_run_alone(
    writes: list[bool | None], expected: Any
) -> None:
    async def run(ctx: ToolContext, args: dict[str, Any]) -> Any:
        return None

    tools = [None if w is None else Tool(f"t{i}", "", schema(), run, writes=w) for i, w in enumerate(writes)]
    assert batches(tools) == expected


async def test_a_run_uses_memory_tools_then_answers_and_every_call_is_audited(node: Node) -> None:
    await node.agents.create(AgentProfile(name="coder", soul="You write code."))
    rt, model = runtime(
        node,
        {
            "coder": [
                Reply(
                    "", [call("memory_store", {"content": "The build uses pnpm", "kind": "decision"})], 50, 10
                ),
                Reply("", [call("memory_search", {"query": "which package manager?"})], 60, 10),
                Reply("We use pnpm.", [], 70, 5),
            ]
        },
    )
    events: list[Event] = []

    async def emit(event: Event) -> None:
        events.append(event)

    result = await rt.run("coder", "Which package manager does the build use?", emit=emit)
    assert (result.status, result.answer, result.steps, result.tokens) == (
        "completed",
        "We use pnpm.",
        3,
        205,
    )
    assert result.calls == [
        {"tool": "memory_store", "outcome": "ok"},
        {"tool": "memory_search", "outcome": "ok"},
    ]
    assert [e.type for e in events] == [
        "started",
        "step",
        "tool_started",
        "tool_finished",
        "step",
        "tool_started",
        "tool_finished",
        "step",
        "finished",
    ]
    found = events[6].data["result"]
    assert found[0]["content"] == "The build uses pnpm"
    first = model.requests[0][1]
    assert first.messages[0]["content"].startswith("You write code.")
    assert {t["function"]["name"] for t in first.tools or []} >= {
        "memory_search",
        "memory_store",
        "send_message",
    }
    assert "delegate" not in {t["function"]["name"] for t in first.tools or []}  # nobody below L2
    last = model.requests[2][1]
    assert [m["role"] for m in last.messages] == ["system", "user", "assistant", "tool", "assistant", "tool"]
    entries = await audit(node)
    assert [
        (e["kind"], e["body"].get("tool"), e["body"].get("effect") or e["body"].get("outcome"))
        for e in entries
    ] == [
        ("policy", "memory_store", "allow"),
        ("tool", "memory_store", "ok"),
        ("policy", "memory_search", "allow"),
        ("tool", "memory_search", "ok"),
    ]


async def test_read_only_calls_run_concurrently_and_writes_one_at_a_time_in_order(node: Node) -> None:
    both = anyio.Event()
    arrived: list[str] = []
    order: list[str] = []

    async def look(ctx: ToolContext, args: dict[str, Any]) -> Any:
        arrived.append(args["n"])
        if len(arrived) == 2:
            both.set()
        await both.wait()  # returns only if both reads are in flight at once
        return args["n"]

    async def write(ctx: ToolContext, args: dict[str, Any]) -> Any:
        order.append(f"start {args['n']}")
        await anyio.sleep(0.01)
        order.append(f"end {args['n']}")
        return args["n"]

    lookup = Tool("look", "", schema(n={"type": "string"}), look, writes=False, impact=0.0)
    writer = Tool("write", "", schema(n={"type": "string"}), write, writes=True, impact=0.1)
    await node.agents.create(AgentProfile(name="coder"))
    calls = [
        call("look", {"n": "a"}),
        call("look", {"n": "b"}),
        call("write", {"n": "1"}),
        call("write", {"n": "2"}),
    ]
    rt, _ = runtime(node, {"coder": [Reply("", calls), Reply("done")]}, lookup, writer)
    with anyio.fail_after(10):
        result = await rt.run("coder", "look, then write twice")
    assert result.status == "completed"
    assert order == ["start 1", "end 1", "start 2", "end 2"]


async def test_policy_denies_asks_and_a_person_approves_while_the_agent_waits(node: Node) -> None:
    ran: list[str] = []
    await node.agents.create(AgentProfile(name="coder"))
    calls = [call("shell", {"command": "rm -rf build"}), call("shell", {"command": "deploy staging"})]
    rt, model = runtime(node, {"coder": [Reply("", calls), Reply("deployed")]}, shell(ran))
    waiting: list[str] = []
    asked = anyio.Event()

    async def emit(event: Event) -> None:
        if event.type == "approval_waiting":
            waiting.append(event.data["approval_id"])
            asked.set()

    async def approve() -> None:
        await asked.wait()
        await node.checkpoints.decide(waiting[0], ADMIN, Verdict.APPROVE)

    async with anyio.create_task_group() as group:
        group.start_soon(approve)
        with anyio.fail_after(20):
            result = await rt.run("coder", "clean and deploy", emit=emit)
    assert ran == ["deploy staging"]  # rm was denied; deploy ran once approved
    assert result.calls == [
        {"tool": "shell", "outcome": "permission_denied"},
        {"tool": "shell", "outcome": "ok"},
    ]
    tool_results = [m for m in model.requests[1][1].messages if m["role"] == "tool"]
    assert "denied by node rule shell(rm:*)" in tool_results[0]["content"]
    entries = await audit(node)
    kinds = [
        (e["kind"], e["body"].get("event") or e["body"].get("effect") or e["body"].get("outcome"))
        for e in entries
    ]
    assert kinds == [
        ("policy", "deny"),
        ("policy", "ask"),
        ("approval", "requested"),
        ("approval", "approved"),
        ("tool", "ok"),
    ]
    assert entries[-1]["body"]["approval"] == waiting[0]


async def test_a_rejected_call_does_not_run_and_the_model_hears_why(node: Node) -> None:
    ran: list[str] = []
    await node.agents.create(AgentProfile(name="coder"))
    rt, model = runtime(
        node, {"coder": [Reply("", [call("shell", {"command": "deploy prod"})]), Reply("ok")]}, shell(ran)
    )

    async def reject(event: Event) -> None:
        if event.type == "approval_waiting":
            await node.checkpoints.decide(event.data["approval_id"], ADMIN, Verdict.REJECT, note="freeze")

    result = await rt.run("coder", "deploy", emit=reject)
    assert ran == []
    assert result.calls == [{"tool": "shell", "outcome": "approval_denied"}]
    (tool_result,) = [m for m in model.requests[1][1].messages if m["role"] == "tool"]
    assert "rejected by admin: freeze" in tool_result["content"]
    assert (await node.checkpoints.recent(Status.REJECTED))[0].tool == "shell"


async def test_bad_calls_come_back_as_errors_and_budgets_stop_a_run(node: Node) -> None:
    await node.agents.create(AgentProfile(name="coder", max_steps=3, tools=["memory_*"]))
    calls = [
        call("nope", {}),
        call("memory_search", "{not json"),
        call("send_message", {"recipient": "x", "text": "y"}),
    ]
    rt, _ = runtime(node, {"coder": [Reply("thinking", calls, 10, 10)]})
    result = await rt.run("coder", "loop forever")
    assert (result.status, result.steps) == ("step_budget_exhausted", 3)
    assert result.calls[:3] == [
        {"tool": "nope", "outcome": "not_found"},
        {"tool": "memory_search", "outcome": "invalid_arguments"},
        {"tool": "send_message", "outcome": "not_found"},  # not among its allowed tools
    ]
    await node.agents.create(AgentProfile(name="writer", max_tokens=100))
    rt, _ = runtime(node, {"writer": [Reply("", [call("memory_search", {"query": "x"})], 60, 10)]})
    result = await rt.run("writer", "spend")
    assert (result.status, result.steps, result.tokens) == ("token_budget_exhausted", 2, 140)


async def test_an_l1_agent_delegates_to_a_served_l2_agent_and_the_task_is_queryable(node: Node) -> None:
    await node.agents.create(AgentProfile(name="planner", level=Level.L1))
    await node.agents.create(AgentProfile(name="coder", level=Level.L2, capabilities=["python"], serve=True))
    await node.agents.create(AgentProfile(name="boss", level=Level.L0))
    rt, model = runtime(
        node,
        {
            "planner": [
                Reply(
                    "", [call("delegate", {"agent": "coder", "task": "fix the test", "needs": ["python"]})]
                ),
                Reply("", [call("delegate", {"agent": "coder", "task": "write rust", "needs": ["rust"]})]),
                Reply("all done"),
            ],
            "coder": [Reply("fixed: 1 file")],
        },
    )
    async with anyio.create_task_group() as group:
        group.start_soon(rt.serve)
        with anyio.fail_after(20):
            result = await rt.run("planner", "get the test fixed")
        group.cancel_scope.cancel()
    assert result.status == "completed"
    offered = model.requests[0][1].tools or []
    (delegate,) = [t for t in offered if t["function"]["name"] == "delegate"]
    assert delegate["function"]["parameters"]["properties"]["agent"]["enum"] == ["coder"]  # not boss (L0)
    rejected, completed = await rt.delegation.recent("planner")
    assert (completed.status, completed.result, completed.assignee) == ("completed", "fixed: 1 file", "coder")
    assert (rejected.status, rejected.result) == ("rejected", "coder lacks rust")
    replies = await node.bus.receive("planner", 10)
    assert [d.envelope.kind.value for d in replies] == ["TASK_ACCEPT", "TASK_COMPLETE", "TASK_REJECT"]
    assert {d.envelope.correlation_id for d in replies} == {completed.id, rejected.id}


async def test_escalation_goes_to_the_level_above_and_from_l1_to_people(node: Node) -> None:
    await node.agents.create(AgentProfile(name="lead", level=Level.L1))
    await node.agents.create(AgentProfile(name="helper", level=Level.L2))
    rt, _ = runtime(
        node,
        {
            "helper": [Reply("", [call("escalate", {"reason": "needs prod access"})]), Reply("escalated")],
            "lead": [Reply("", [call("escalate", {"reason": "budget decision"})]), Reply("escalated")],
        },
    )
    await rt.run("helper", "deploy")
    await rt.run("lead", "buy servers")
    (up,) = await node.bus.receive("lead", 10)
    assert (up.envelope.kind.value, up.envelope.sender, up.envelope.payload["reason"]) == (
        "ESCALATE",
        "helper",
        "needs prod access",
    )
    (human,) = await node.bus.receive("admin", 10)
    assert (human.envelope.sender, human.envelope.payload["reason"]) == ("lead", "budget decision")


async def test_a_declared_profile_replaces_the_stored_one_and_moves_the_level(node: Node) -> None:
    _, token = await node.agents.create(AgentProfile(name="coder", level=Level.L2))
    await node.agents.declare(AgentProfile(name="coder", level=Level.L1, capabilities=["go"]))
    assert (await node.agents.get("coder")).capabilities == ["go"]
    principal = await node.authenticate(token)  # the token still works, at the new level
    assert principal.level is Level.L1


async def test_an_agent_marked_serve_while_the_node_runs_starts_taking_tasks(node: Node) -> None:
    await node.agents.create(AgentProfile(name="planner", level=Level.L1))
    rt, _ = runtime(
        node,
        {
            "planner": [Reply("", [call("delegate", {"agent": "coder", "task": "fix it"})]), Reply("done")],
            "coder": [Reply("fixed")],
        },
    )
    async with anyio.create_task_group() as group:
        group.start_soon(rt.serve, 0.02)
        await node.agents.create(AgentProfile(name="coder", level=Level.L2, serve=True))  # after start
        with anyio.fail_after(20):
            result = await rt.run("planner", "get it fixed")
        group.cancel_scope.cancel()
    assert result.status == "completed"
    (task,) = await rt.delegation.recent("planner")
    assert (task.status, task.result) == ("completed", "fixed")


async def test_a_task_whose_node_died_mid_run_is_resumed_then_given_up_and_the_delegator_hears(
    node: Node,
) -> None:
    """An accepted task stays accepted forever if its runner's node is killed: its lease lapses,
    and recovery delegates it again (the served agent takes it) or, after three lapsed runs, fails
    it; every step is a message to the delegator."""
    planner = AgentProfile(name="planner", level=Level.L1)
    await node.agents.create(planner)
    await node.agents.create(AgentProfile(name="coder", level=Level.L2, serve=True))
    rt, _ = runtime(node, {"coder": [Reply("done after the restart")]})
    record = await rt.delegation.delegate(planner, "coder", "fix the test")
    await node.bus.receive("coder", 10)  # taken by a runner...
    await rt.delegation.accept(record.id, "coder")
    await node.store.lease_task(record.id, datetime.now(UTC) - timedelta(seconds=1))  # ...that died
    await node.bus.receive("planner", 10)  # the TASK_ACCEPT

    (resumed,) = await rt.delegation.recover()
    assert (resumed.status, resumed.attempts) == ("delegated", 1)
    (told,) = await node.bus.receive("planner", 10)
    assert (told.envelope.kind.value, told.envelope.payload["status"]) == ("STATUS", "resumed")
    async with anyio.create_task_group() as group:  # the served agent takes it again and finishes
        group.start_soon(rt.serve)
        with anyio.fail_after(20):
            finished = await rt.delegation.wait(record.id, 20)
        group.cancel_scope.cancel()
    assert (finished.status, finished.result) == ("completed", "done after the restart")

    again = await rt.delegation.delegate(planner, "coder", "another one")
    for _ in range(3):  # three runs that all die
        await node.bus.receive("coder", 10)
        await node.store.move_task(again.id, ["delegated"], "accepted", None, datetime.now(UTC))
        await node.store.lease_task(again.id, datetime.now(UTC) - timedelta(seconds=1))
        await rt.delegation.recover()
    gave_up = await rt.delegation.get(again.id)
    assert (gave_up.status, gave_up.attempts) == ("failed", 3)
    assert "stopped 3 times" in (gave_up.result or "")
    kinds = [d.envelope.kind.value for d in await node.bus.receive("planner", 20)]
    assert kinds[-1] == "TASK_COMPLETE" and kinds.count("STATUS") >= 2


async def test_a_run_past_its_deadline_ends_as_deadline_exceeded(node: Node) -> None:
    async def hang(ctx: ToolContext, args: dict[str, Any]) -> Any:
        await anyio.sleep_forever()

    await node.agents.create(AgentProfile(name="waiter", level=Level.L2, rules={"allow": ["hang"]}))
    stuck = Tool("hang", "Never returns.", schema(), hang, impact=0.1)
    settings = node.settings.runtime.model_copy(update={"run_timeout_minutes": 0.005})  # 0.3 s
    model = ScriptedModel({"waiter": [Reply("", [call("hang", {})]), Reply("unreachable")]})
    rt = Runtime(node, model, "fake", settings, [stuck])
    with anyio.fail_after(10):
        result = await rt.run("waiter", "wait for it")
    assert (result.status, result.steps) == ("deadline_exceeded", 1)
