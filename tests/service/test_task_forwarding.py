"""Agent tasks across nodes, each side on a real node (store, bus, audit): the serving desk's
rules (who may give tasks, room per peer, keys, who reads what), and the delegating side's
following of a task its peer reports on — including a peer that never got the task and one
that is gone. The network between them is ``tests/integration/test_federation.py``'s."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from noosphere.agents.delegation import Delegation, RemoteAgent, RemoteState, TaskStatus
from noosphere.agents.profile import AgentProfile
from noosphere.auth.principal import Level
from noosphere.config import PeerSettings
from noosphere.errors import NoCapacity, NotFound, PermissionDenied
from noosphere.federation.forwarding import LoopDetected
from noosphere.federation.tasks import ForwardedTask, TaskDesk, TaskStates
from noosphere.identity import load_or_create
from noosphere.node import Node
from noosphere.store.contract import TaskRecord


def _peer(tmp_path: Path, name: str, **options: bool) -> PeerSettings:
    key = load_or_create(tmp_path / name)
    return PeerSettings(id=key.id, public_key=key.public_text, url="http://127.0.0.1:9", **options)


def _asked(peer: PeerSettings, key: str, agent: str = "coder") -> ForwardedTask:
    return ForwardedTask(key=key, agent=agent, task="write the notes", via=[peer.id])


async def test_the_desk_takes_tasks_only_from_peers_allowed_within_their_room(
    any_node: Node, tmp_path: Path
) -> None:
    node = any_node
    await node.agents.create(AgentProfile(name="coder", level=Level.L2, serve=True))
    await node.agents.create(AgentProfile(name="idle", level=Level.L2))
    delegation = Delegation(node.store, node.bus, node.agents)
    desk = TaskDesk(delegation, node.agents, lambda: frozenset({"coder"}), node.audit, node.key.id, 1)
    friend, other = (
        _peer(tmp_path, "friend", forward_agents=True),
        _peer(tmp_path, "other", forward_agents=True),
    )
    with pytest.raises(PermissionDenied):
        await desk.take(_peer(tmp_path, "stranger"), _asked(friend, "k" * 16))
    with pytest.raises(LoopDetected):
        await desk.take(
            friend, ForwardedTask(key="k" * 16, agent="coder", task="x", via=[node.key.id, friend.id])
        )
    with pytest.raises(NotFound):
        await desk.take(friend, _asked(friend, "k" * 16, agent="idle"))  # not served here
    assert [a.model_dump() for a in await desk.offers(friend)] == [
        {"name": "coder", "level": "L2", "free": 1}
    ]

    first = await desk.take(friend, _asked(friend, "key-one-1"))
    assert first.status is TaskStatus.DELEGATED
    assert await desk.take(friend, _asked(friend, "key-one-1")) == first  # a retry is the same task
    with pytest.raises(NoCapacity):
        await desk.take(friend, _asked(friend, "key-two-2"))  # its one open task fills its room
    assert (await desk.offers(friend))[0].free == 0
    assert (
        await desk.take(other, _asked(other, "key-two-2"))
    ).status is TaskStatus.DELEGATED  # rooms are per peer

    (queued, _) = await node.bus.receive("coder", 10)
    assert queued.envelope.sender == f"peer:{friend.id}"
    record = await node.store.task(str(queued.envelope.payload["task_id"]))
    assert record is not None and record.delegator == f"peer:{friend.id}"
    # Done: the friend learns it by asking; no message is left in a mailbox nobody reads.
    await delegation.accept(record.id, "coder")
    await delegation.complete(record.id, "coder", "notes written")
    assert await node.bus.stats(f"peer:{friend.id}") == []
    (state,) = (await desk.states(friend, TaskStates(keys=["key-one-1"]))).tasks
    assert (state.status, state.result) == (TaskStatus.COMPLETED, "notes written")
    (hidden,) = (await desk.states(other, TaskStates(keys=["key-one-1"]))).tasks  # not other's key
    assert hidden.status is None
    assert (await desk.offers(friend))[0].free == 1
    await node.audit.close()
    audited = [json.loads(e.entry) for e in await node.store.audit_entries()]
    assert [(e["actor"], e["body"]["key"]) for e in audited if e["kind"] == "federation.task"] == [
        (f"peer:{friend.id}", "key-one-1"),
        (f"peer:{other.id}", "key-two-2"),
    ]


class ScriptedPeers:
    """The peers' side as a script: what ``find`` offers, and the answers to each ``forward`` and
    each ``states`` call, in order."""

    def __init__(
        self, offer: RemoteAgent | None, forwards: list[RemoteState | None], states: list[RemoteState]
    ):
        self.offer, self.forwards, self.answers = offer, forwards, states
        self.forwarded: list[str] = []

    def find(self, name: str) -> RemoteAgent | None:
        return self.offer if self.offer and self.offer.address.startswith(name) else None

    def offered(self) -> dict[str, Level]:
        return {} if self.offer is None else {self.offer.address.partition("@")[0]: self.offer.level}

    async def forward(self, record: TaskRecord, needs: Sequence[str]) -> RemoteState | None:
        self.forwarded.append(record.id)
        return self.forwards.pop(0)

    async def states(self, records: Sequence[TaskRecord]) -> dict[str, RemoteState]:
        answer = self.answers.pop(0)
        return {r.id: answer for r in records}


async def test_a_task_given_to_a_peers_agent_moves_as_the_peer_reports(node: Node) -> None:
    planner = AgentProfile(name="planner", level=Level.L1)
    await node.agents.create(planner)
    peers = ScriptedPeers(
        RemoteAgent("coder@node-garage", Level.L2),
        forwards=[None, RemoteState(TaskStatus.DELEGATED)],  # not reached; then taken
        states=[
            RemoteState(TaskStatus.DELEGATED, known=False),  # the peer never got it: sent again
            RemoteState(TaskStatus.ACCEPTED),
            RemoteState(TaskStatus.COMPLETED, "notes written"),
        ],
    )
    delegation = Delegation(node.store, node.bus, node.agents, remote=peers)
    record = await delegation.delegate(planner, "coder", "write the notes")
    assert (record.assignee, record.status) == ("coder@node-garage", "delegated")
    for _ in range(3):
        await delegation.check_remote()
    assert peers.forwarded == [record.id, record.id]
    done = await delegation.get(record.id)
    assert (done.status, done.result) == ("completed", "notes written")
    heard = await node.bus.receive("planner", 10)
    assert [d.envelope.kind.value for d in heard] == ["TASK_ACCEPT", "TASK_COMPLETE"]
    assert {d.envelope.sender for d in heard} == {"coder@node-garage"}
    await delegation.check_remote()  # settled: nothing more is asked
    assert peers.answers == []


async def test_a_peers_agent_must_rank_below_the_delegator_and_a_gone_peer_fails_the_task(node: Node) -> None:
    planner = AgentProfile(name="planner", level=Level.L1)
    await node.agents.create(planner)
    equal = ScriptedPeers(RemoteAgent("boss@node-garage", Level.L1), [], [])
    with pytest.raises(PermissionDenied):
        await Delegation(node.store, node.bus, node.agents, remote=equal).delegate(planner, "boss", "x")
    with pytest.raises(NotFound):
        await Delegation(node.store, node.bus, node.agents, remote=equal).delegate(planner, "nobody", "x")
    gone = RemoteState(TaskStatus.FAILED, "node-garage stopped answering (dead)")
    peers = ScriptedPeers(
        RemoteAgent("coder@node-garage", Level.L2), [RemoteState(TaskStatus.ACCEPTED)], [gone]
    )
    delegation = Delegation(node.store, node.bus, node.agents, remote=peers)
    record = await delegation.delegate(planner, "coder", "write the notes")
    assert record.status == "accepted"
    await delegation.check_remote()
    failed = await delegation.get(record.id)
    assert (failed.status, failed.result) == ("failed", "node-garage stopped answering (dead)")
