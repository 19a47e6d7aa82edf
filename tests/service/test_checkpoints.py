"""Human checkpoints on a real node: requests, decisions by people, scopes, timeouts, escalation."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from noosphere.agents.profile import AgentProfile
from noosphere.auth.principal import ADMIN_ID, Principal, PrincipalKind
from noosphere.config import load_settings
from noosphere.embeddings.minilm import MiniLMEmbedder
from noosphere.errors import ArgumentsChanged, Conflict, InvalidRequest, PermissionDenied
from noosphere.governance.checkpoints import Checkpoints, Scope, Status, Verdict, check_arguments
from noosphere.governance.policy import ToolCall
from noosphere.node import Node, open_node
from tests.service.conftest import make_agent, make_user

ADMIN = Principal(ADMIN_ID, PrincipalKind.ADMIN, ADMIN_ID)
CALL = ToolCall("Bash", "git push", impact=0.8)
ARGS = {"command": "git push"}


class Clock:
    """A settable clock for expiry, shared by the checkpoints under test."""

    def __init__(self) -> None:
        self.at = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.at


def checkpoints(node: Node, clock: Clock, on_timeout: str = "deny") -> Checkpoints:
    settings = node.settings.governance.model_copy(update={"on_timeout": on_timeout})
    return Checkpoints(node.store, node.audit, settings, poll_seconds=0.02, now=clock)


async def coder_approver(node: Node, name: str) -> Principal:
    """A user named approver of the agent ``coder``."""
    person = await make_user(node, name)
    await node.agents.declare(AgentProfile(name="coder", approvers=[name]))
    return person


async def test_a_person_approves_and_the_waiting_call_goes_ahead(any_node: Node) -> None:
    alice = await coder_approver(any_node, "alice")
    ask = await any_node.checkpoints.request("coder", "L2", CALL, ARGS, "impact above 0.7", "s1")
    assert ask.status == Status.PENDING
    assert [a.id for a in await any_node.checkpoints.recent(Status.PENDING)] == [ask.id]
    async with anyio.create_task_group() as group:

        async def approve() -> None:
            await any_node.checkpoints.decide(ask.id, alice, Verdict.APPROVE, note="fine")

        group.start_soon(approve)
        with anyio.fail_after(10):
            settled = await any_node.checkpoints.wait(ask.id)
    assert (settled.status, settled.decided_by, settled.scope, settled.note) == (
        "approved",
        "user:alice",
        "once",
        "fine",
    )
    check_arguments(settled, {"command": "git push"})  # unchanged: runs
    with pytest.raises(ArgumentsChanged, match="changed after approval"):
        check_arguments(settled, {"command": "git push --force"})
    assert not await any_node.checkpoints.granted("coder", CALL, "s1")  # once leaves no grant


async def test_agents_cannot_decide_and_a_decision_is_final(any_node: Node) -> None:
    coder = await make_agent(any_node, "coder")
    ask = await any_node.checkpoints.request("coder", "L2", CALL, ARGS, "asks", None)
    with pytest.raises(PermissionDenied, match="only people decide"):
        await any_node.checkpoints.decide(ask.id, coder, Verdict.APPROVE)
    with pytest.raises(InvalidRequest, match="no session"):
        await any_node.checkpoints.decide(ask.id, ADMIN, Verdict.APPROVE, Scope.SESSION)
    rejected = await any_node.checkpoints.decide(ask.id, ADMIN, Verdict.REJECT, note="not today")
    assert rejected.status == Status.REJECTED
    with pytest.raises(Conflict, match="already rejected"):
        await any_node.checkpoints.decide(ask.id, ADMIN, Verdict.APPROVE)
    assert (await any_node.checkpoints.wait(ask.id)).status == Status.REJECTED


async def test_session_and_always_scopes_leave_standing_grants(any_node: Node) -> None:
    first = await any_node.checkpoints.request("coder", "L2", CALL, ARGS, "asks", "s1")
    await any_node.checkpoints.decide(first.id, ADMIN, Verdict.APPROVE, Scope.SESSION)
    assert await any_node.checkpoints.granted("coder", CALL, "s1")
    assert not await any_node.checkpoints.granted("coder", CALL, "s2")
    assert not await any_node.checkpoints.granted("reviewer", CALL, "s1")
    second = await any_node.checkpoints.request("coder", "L2", CALL, ARGS, "asks", "s2")
    await any_node.checkpoints.decide(second.id, ADMIN, Verdict.APPROVE, Scope.ALWAYS)
    assert await any_node.checkpoints.granted("coder", CALL, "s9")
    assert await any_node.checkpoints.granted("coder", CALL, None)
    assert not await any_node.checkpoints.granted("coder", ToolCall("Bash", "rm -rf /"), None)


async def test_an_undecided_approval_times_out_and_is_denied_not_rejected(any_node: Node) -> None:
    clock = Clock()
    gate = checkpoints(any_node, clock)
    ask = await gate.request("coder", "L2", CALL, ARGS, "asks", None)
    clock.at += timedelta(minutes=61)
    with anyio.fail_after(10):
        settled = await gate.wait(ask.id)
    assert (settled.status, settled.decided_by) == ("timeout", "node")
    with pytest.raises(Conflict, match="already timeout"):
        await gate.decide(ask.id, ADMIN, Verdict.APPROVE)


async def test_the_sweep_records_timeouts_nobody_waits_for(any_node: Node) -> None:
    clock = Clock()
    gate = checkpoints(any_node, clock)
    ask = await gate.request("coder", "L2", CALL, ARGS, "asks", None)
    assert await gate.expire_due() == []
    clock.at += timedelta(hours=2)
    (expired,) = await gate.expire_due()
    assert (expired.id, expired.status) == (ask.id, "timeout")


async def test_a_timeout_escalates_to_the_admin_once_when_policy_says_so(any_node: Node) -> None:
    alice = await make_user(any_node, "alice")
    clock = Clock()
    gate = checkpoints(any_node, clock, on_timeout="escalate")
    ask = await gate.request("coder", "L2", CALL, ARGS, "asks", None)
    clock.at += timedelta(minutes=61)
    (timed_out,) = await gate.expire_due()
    assert timed_out.status == Status.TIMEOUT
    up = await gate.get(ask.id + "-up")
    assert (up.status, up.escalated_from, up.args_digest) == ("pending", ask.id, ask.args_digest)
    with pytest.raises(PermissionDenied, match="escalated to the admin"):
        await gate.decide(up.id, alice, Verdict.APPROVE)
    async with anyio.create_task_group() as group:

        async def approve() -> None:
            await gate.decide(up.id, ADMIN, Verdict.APPROVE)

        group.start_soon(approve)
        with anyio.fail_after(10):
            settled = await gate.wait(ask.id)  # the waiter follows the escalation
    assert (settled.id, settled.status) == (up.id, "approved")
    clock.at += timedelta(minutes=61)
    assert await gate.expire_due() == []  # decided: nothing to time out


async def test_a_person_escalates_to_the_admin_and_the_waiter_follows(any_node: Node) -> None:
    alice = await coder_approver(any_node, "alice")
    ask = await any_node.checkpoints.request("coder", "L2", CALL, ARGS, "asks", None)
    escalated = await any_node.checkpoints.decide(ask.id, alice, Verdict.ESCALATE, note="your call")
    assert escalated.status == Status.ESCALATED
    up = await any_node.checkpoints.get(ask.id + "-up")
    assert "escalated by user:alice: your call" in up.reason
    with pytest.raises(Conflict, match="already with the admin"):
        await any_node.checkpoints.decide(up.id, ADMIN, Verdict.ESCALATE)
    await any_node.checkpoints.decide(up.id, ADMIN, Verdict.REJECT)
    assert (await any_node.checkpoints.wait(ask.id)).status == Status.REJECTED


async def test_requests_and_decisions_are_audited(any_node: Node) -> None:
    ask = await any_node.checkpoints.request("coder", "L2", CALL, ARGS, "asks", None)
    await any_node.checkpoints.decide(ask.id, ADMIN, Verdict.APPROVE, Scope.ALWAYS)
    await any_node.audit.close()
    entries = [json.loads(e.entry) for e in await any_node.store.audit_entries()]
    assert [(e["actor"], e["kind"], e["body"]["event"], e["body"]["id"]) for e in entries] == [
        ("coder", "approval", "requested", ask.id),
        ("admin", "approval", "approved", ask.id),
    ]
    assert entries[1]["body"]["scope"] == "always"
    assert entries[0]["body"]["args_sha256"] == ask.args_digest


async def test_a_pending_approval_survives_a_restart(tmp_path: Path, minilm: MiniLMEmbedder) -> None:
    settings = load_settings(None, data_dir=tmp_path / "node")
    async with open_node(settings, embedder=minilm) as node:
        ask = await node.checkpoints.request("coder", "L2", CALL, ARGS, "asks", None)
    async with open_node(settings, embedder=minilm) as node:
        assert [a.id for a in await node.checkpoints.recent(Status.PENDING)] == [ask.id]
        approved = await node.checkpoints.decide(ask.id, ADMIN, Verdict.APPROVE)
        assert approved.status == Status.APPROVED


async def test_only_the_admin_the_owner_and_named_approvers_see_and_decide_an_agents_checkpoints(
    any_node: Node,
) -> None:
    owner, approver, stranger = [await make_user(any_node, n) for n in ("olga", "alice", "mallory")]
    await any_node.agents.declare(AgentProfile(name="coder", owner="olga", approvers=["alice"]))
    ask = await any_node.checkpoints.request("coder", "L2", CALL, ARGS, "asks", "s1")
    other = await any_node.checkpoints.request("scribe", "L2", CALL, ARGS, "asks", "s2")
    assert [a.id for a in await any_node.checkpoints.recent_for(stranger)] == []
    with pytest.raises(PermissionDenied, match="not yours to see"):
        await any_node.checkpoints.get_for(stranger, ask.id)
    with pytest.raises(PermissionDenied, match="not user:mallory's to decide"):
        await any_node.checkpoints.decide(ask.id, stranger, Verdict.APPROVE, Scope.ALWAYS)
    assert [a.id for a in await any_node.checkpoints.recent_for(owner)] == [ask.id]
    assert [a.id for a in await any_node.checkpoints.recent_for(approver)] == [ask.id]
    assert {a.id for a in await any_node.checkpoints.recent_for(ADMIN)} == {ask.id, other.id}
    with pytest.raises(PermissionDenied):
        await any_node.checkpoints.decide(other.id, owner, Verdict.APPROVE)
    decided = await any_node.checkpoints.decide(ask.id, approver, Verdict.APPROVE, Scope.SESSION)
    assert decided.decided_by == "user:alice"
    assert not await any_node.checkpoints.granted("coder", CALL, "s2")
