"""Calls from outside the node (MCP, REST, CLI) pass the same gate as agents' tool calls: policy,
a person's approval where a rule asks (asked for, then used once), and audit."""

from __future__ import annotations

import json

import anyio
import anyio.lowlevel
import pytest

from noosphere.agents.profile import AgentProfile
from noosphere.auth.principal import ADMIN_ID, Level, Principal, PrincipalKind
from noosphere.errors import ApprovalDenied, ApprovalRequired, PermissionDenied
from noosphere.governance.actions import Governor
from noosphere.governance.checkpoints import Scope, Verdict
from noosphere.memory.model import MemoryDraft, Zone
from noosphere.node import Node
from tests.service.conftest import make_agent, make_user

ADMIN = Principal(ADMIN_ID, PrincipalKind.ADMIN, ADMIN_ID)


def governor(node: Node, wait_seconds: float = 0.0, **rules: list[str]) -> Governor:
    settings = node.settings.governance.model_copy(update={"rules": rules})
    return Governor(node.governor.gate, settings, node.agents, wait_seconds)


async def forget(gov: Governor, who: Principal, node: Node, memory_id: str) -> str:
    async def act() -> str:
        await node.memory.forget(who, memory_id)
        return "forgotten"

    return await gov.run(who, "memory_forget", {"id": memory_id}, act)


async def test_a_rule_asks_a_person_and_the_same_call_goes_ahead_once_approved(any_node: Node) -> None:
    gov = governor(any_node, ask=["memory_forget(*)"])
    bob = await make_user(any_node, "bob")
    memory = await any_node.memory.store_one(bob, MemoryDraft(content="bob's note", zone=Zone.PRIVATE))

    with pytest.raises(ApprovalRequired) as asked:
        await forget(gov, bob, any_node, memory.id)
    approval = asked.value.details["approval_id"]
    with pytest.raises(ApprovalRequired) as again:  # repeating it does not ask twice
        await forget(gov, bob, any_node, memory.id)
    assert again.value.details["approval_id"] == approval
    record = await any_node.checkpoints.get(approval)
    assert (record.requester, record.tool, record.subject) == ("user:bob", "memory_forget", memory.id)
    with pytest.raises(PermissionDenied):  # bob cannot approve his own call: only the admin decides it
        await any_node.checkpoints.decide(approval, bob, Verdict.APPROVE)

    await any_node.checkpoints.decide(approval, ADMIN, Verdict.APPROVE)
    assert await forget(gov, bob, any_node, memory.id) == "forgotten"
    assert (await any_node.checkpoints.get(approval)).used_at is not None

    # The approval cleared one call: the same call again is a new question, not a replay.
    with pytest.raises(ApprovalRequired) as replay:
        await forget(gov, bob, any_node, memory.id)
    assert replay.value.details["approval_id"] != approval


async def test_a_rejection_is_reported_once_then_the_call_may_ask_again(any_node: Node) -> None:
    gov = governor(any_node, ask=["bus_subscribe(builds.*)"])
    bob = await make_user(any_node, "bob")

    async def subscribe() -> None:
        await gov.run(
            bob,
            "bus_subscribe",
            {"pattern": "builds.x"},
            lambda: any_node.bus.subscribe(bob.mailbox, "builds.x"),
        )

    with pytest.raises(ApprovalRequired) as asked:
        await subscribe()
    await any_node.checkpoints.decide(asked.value.details["approval_id"], ADMIN, Verdict.REJECT, note="no")
    with pytest.raises(ApprovalDenied, match="rejected by admin: no"):
        await subscribe()
    with pytest.raises(ApprovalRequired):
        await subscribe()
    assert await any_node.bus.subscriptions(bob.mailbox) == []
    # A pattern the rule does not name is not asked about: people act on their own authority.
    await gov.run(bob, "bus_subscribe", {"pattern": "x"}, lambda: any_node.bus.subscribe(bob.mailbox, "x"))


async def test_deny_rules_bind_people_and_every_outside_call_is_audited(any_node: Node) -> None:
    gov = governor(any_node, deny=["memory_store(shared)"])
    bob = await make_user(any_node, "bob")
    draft = MemoryDraft(content="for everyone", zone=Zone.SHARED)
    with pytest.raises(PermissionDenied, match="denied by node rule memory_store"):
        await gov.run(
            ADMIN, "memory_store", {"zone": "shared"}, lambda: any_node.memory.store_one(ADMIN, draft)
        )
    mine = MemoryDraft(content="mine", zone=Zone.PRIVATE)
    await gov.run(bob, "memory_store", {"zone": "private"}, lambda: any_node.memory.store_one(bob, mine))

    entries = [json.loads(e.entry) for e in await any_node.store.audit_entries(0, 1000)]
    seen = [(e["actor"], e["kind"], e["body"].get("effect") or e["body"].get("outcome")) for e in entries]
    assert ("admin", "policy", "deny") in seen
    assert ("user:bob", "policy", "allow") in seen and ("user:bob", "tool", "ok") in seen


async def test_a_caller_may_wait_for_the_decision(any_node: Node) -> None:
    gov = governor(any_node, wait_seconds=10, ask=["memory_forget(*)"])
    bob = await make_user(any_node, "bob")
    memory = await any_node.memory.store_one(bob, MemoryDraft(content="to go", zone=Zone.PRIVATE))
    result: list[str] = []

    async def call() -> None:
        result.append(await forget(gov, bob, any_node, memory.id))

    async with anyio.create_task_group() as group:
        group.start_soon(call)
        with anyio.fail_after(10):
            while True:  # until the waiting call has asked
                pending = await any_node.checkpoints.recent()
                if pending:
                    break
                await anyio.sleep(0.02)
        await any_node.checkpoints.decide(pending[0].id, ADMIN, Verdict.APPROVE)
    assert result == ["forgotten"]


async def test_deciding_approvals_cannot_wait_for_an_approval(any_node: Node) -> None:
    gov = governor(any_node, ask=["approval_decide(*)"])
    with pytest.raises(PermissionDenied, match="cannot wait for an approval"):
        await gov.run(ADMIN, "approval_decide", {"id": "x"}, lambda: anyio.lowlevel.checkpoint())
    assert await any_node.checkpoints.recent() == []


async def test_an_agents_token_outside_is_held_to_what_the_agent_is_held_to_inside(any_node: Node) -> None:
    alice = await make_user(any_node, "alice")
    helper = await make_agent(any_node, "helper", Level.L3)
    await any_node.agents.declare(AgentProfile(name="helper", level=Level.L3, approvers=["alice"]))
    gov = governor(any_node)
    draft = MemoryDraft(content="an L3 write", zone=Zone.PRIVATE)

    async def store() -> str:
        return (await any_node.memory.store_one(helper, draft)).id

    with pytest.raises(ApprovalRequired) as asked:  # writes by L3 agents need a person
        await gov.run(helper, "memory_store", {"zone": "private"}, store)
    await any_node.checkpoints.decide(
        asked.value.details["approval_id"], alice, Verdict.APPROVE, Scope.ALWAYS
    )
    assert await gov.run(helper, "memory_store", {"zone": "private"}, store)
    assert await gov.run(helper, "memory_store", {"zone": "private"}, store)  # the standing grant
    # A search is read-only and harmless: no person is needed.
    await gov.run(helper, "memory_search", {"query": "x"}, lambda: anyio.lowlevel.checkpoint())


async def test_a_call_whose_caller_leaves_is_audited_as_cancelled(any_node: Node) -> None:
    bob = await make_user(any_node, "bob")
    with anyio.move_on_after(0.2):
        await governor(any_node).run(bob, "memory_search", {"query": "slow"}, lambda: anyio.sleep(30))
    entries = [json.loads(e.entry) for e in await any_node.store.audit_entries(0, 1000)]
    outcomes = [e["body"]["outcome"] for e in entries if e["kind"] == "tool"]
    assert outcomes == ["cancelled"]
