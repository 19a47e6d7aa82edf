"""Forwarding agent tasks between peers: an agent here delegates to an agent a peer serves.

**Offering.** A node's heartbeats to a peer that may forward agent tasks (``forward_agents``, on
both sides) list the agents it serves (``serve``), each with its level and the room the peer has
left: ``federation.tasks_per_peer`` open tasks at once, per peer.

**Asking** (``TaskForwarding``, the delegation's ``RemoteAgents``). A task for an agent this node
does not have goes to the least loaded live peer that offers one of that name with room
(``name@node-id`` picks the peer). The task is recorded here with the assignee ``name@node-id``
and sent as a signed ``POST /federation/v1/tasks``, keyed by its task id (a retry, or a resend
after either node restarted, never makes a second task). Each heartbeat interval the node asks
each live peer for the state of the tasks it gave it, and moves its own records along: the
delegator hears TASK_ACCEPT and TASK_COMPLETE as from a local agent. A peer that never got a task
(it was down, or full) gets it again; a task whose peer is dead or no longer a peer that takes
tasks fails, with the reason.

**Serving** (``TaskDesk``). The task is recorded with delegator ``peer:<node id>`` and put in the
agent's mailbox, where it waits its turn like any delegated task; the agent's model calls are
metered to that peer's account, and taking it is audited (``federation.task``). A peer sees only
the tasks it gave: their ids here derive from its node id and its key. Tasks are not passed on
to a third node: a node offers only the agents it serves itself.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, TypeVar

import aiohttp
import anyio
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from noosphere.agents.delegation import Delegation, RemoteAgent, RemoteState, TaskStatus
from noosphere.agents.registry import AgentRegistry
from noosphere.auth.principal import PEER_PREFIX, Level
from noosphere.config import PeerSettings
from noosphere.errors import NoCapacity, NotFound, PermissionDenied
from noosphere.federation.forwarding import LoopDetected
from noosphere.federation.membership import PeerState
from noosphere.federation.records import AgentCapacity
from noosphere.federation.transport import exchange
from noosphere.governance.audit import AuditLog
from noosphere.memory.model import Text
from noosphere.pool.scheduler import MAX_HOPS
from noosphere.store.contract import TaskRecord

if TYPE_CHECKING:
    from noosphere.federation.service import Federation

log = logging.getLogger(__name__)

TASKS_PATH = "/federation/v1/tasks"
TASK_STATES_PATH = "/federation/v1/tasks/states"
STATES_MAX = 200  # tasks one state request asks about
RESULT_MAX = 200_000  # characters of a task's result taken from a peer
TASK_MAX = 20_000  # characters of a task, as a person's run takes

Key = Annotated[str, Field(min_length=8, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]


class ForwardedTask(BaseModel):
    """A task a peer gives one of this node's agents."""

    model_config = ConfigDict(extra="forbid")

    key: Key = Field(description="The task's id on the peer: its idempotency key.")
    agent: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
    task: Text = Field(min_length=1, max_length=TASK_MAX)
    needs: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=32)
    via: list[Annotated[str, Field(max_length=64)]] = Field(min_length=1, max_length=MAX_HOPS)


class TaskStates(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys: list[Key] = Field(max_length=STATES_MAX)


class TaskState(BaseModel):
    """A forwarded task as the node running it reports it; ``status`` None if it has no such task."""

    model_config = ConfigDict(extra="forbid")

    key: Key
    status: TaskStatus | None
    result: str | None = Field(None, max_length=RESULT_MAX)

    def remote(self) -> RemoteState:
        if self.status is None:
            return RemoteState(TaskStatus.DELEGATED, known=False)
        return RemoteState(self.status, self.result)


class StateList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tasks: list[TaskState] = Field(max_length=STATES_MAX)


def _local_id(peer: str, key: str) -> str:
    """A peer's task's id here: derived from the peer and its key, so the same key is the same
    task, and no peer can name another's."""
    return "task_" + hashlib.sha256(f"{peer}\0{key}".encode()).hexdigest()[:24]


_M = TypeVar("_M", bound=BaseModel)


class TaskDesk:
    """The serving side: peers' tasks for this node's agents."""

    def __init__(
        self,
        delegation: Delegation,
        registry: AgentRegistry,
        served: Callable[[], frozenset[str]],
        audit: AuditLog,
        own_id: str,
        per_peer: int,
    ) -> None:
        self.delegation, self.registry, self.served = delegation, registry, served
        self.audit, self.own_id, self.per_peer = audit, own_id, per_peer
        self._lock = anyio.Lock()  # one check-and-record at a time: the room and the key hold

    async def take(self, peer: PeerSettings, asked: ForwardedTask) -> TaskState:
        if not peer.forward_agents:
            raise PermissionDenied("this node does not take agent tasks from the caller")
        if self.own_id in asked.via or asked.via[-1] != peer.id:
            raise LoopDetected("the task already passed through this node, or names the wrong sender")
        store = self.delegation.store
        task_id = _local_id(peer.id, asked.key)
        async with self._lock:
            known = await store.task(task_id)
            if known is not None:
                return _state(asked.key, known)
            if asked.agent not in self.served():
                raise NotFound(f"agent {asked.agent!r} does not take tasks on this node")
            if len(await store.open_tasks(PEER_PREFIX + peer.id, self.per_peer)) >= self.per_peer:
                raise NoCapacity(f"the caller already has {self.per_peer} open tasks here; try later")
            record = await self.delegation.assign(
                PEER_PREFIX + peer.id, asked.agent, asked.task, asked.needs, task_id=task_id
            )
        body = {"peer": peer.id, "agent": asked.agent, "task_id": task_id, "key": asked.key}
        with anyio.CancelScope(shield=True):
            await self.audit.append(PEER_PREFIX + peer.id, "federation.task", body)
        return _state(asked.key, record)

    async def states(self, peer: PeerSettings, asked: TaskStates) -> StateList:
        store = self.delegation.store
        found = []
        for key in asked.keys:
            record = await store.task(_local_id(peer.id, key))
            found.append(TaskState(key=key, status=None) if record is None else _state(key, record))
        return StateList(tasks=found)

    async def offers(self, peer: PeerSettings) -> list[AgentCapacity]:
        """The agents this node offers ``peer``, with the room it has left for tasks."""
        served = self.served()
        if not peer.forward_agents or not served:
            return []
        held = len(await self.delegation.store.open_tasks(PEER_PREFIX + peer.id, self.per_peer))
        free = max(0, self.per_peer - held)
        return [
            AgentCapacity(name=profile.name, level=profile.level, free=free)
            for profile in await self.registry.every()
            if profile.name in served
        ]


def _state(key: str, record: TaskRecord) -> TaskState:
    result = None if record.result is None else record.result[:RESULT_MAX]
    return TaskState(key=key, status=TaskStatus(record.status), result=result)


class TaskForwarding:
    """The asking side: the peers' agents, as this node's delegation sees them."""

    def __init__(self, federation: Federation) -> None:
        self.federation = federation

    def _offering(self) -> list[tuple[PeerSettings, list[AgentCapacity], float]]:
        """Live peers that take tasks, with the agents they last offered and their load."""
        found = []
        for peer in self.federation.live():
            hello = self.federation.heard.get(peer.id)
            if peer.forward_agents and hello is not None:
                found.append((peer, hello.agents, hello.load))
        return found

    def find(self, name: str) -> RemoteAgent | None:
        agent, _, pinned = name.partition("@")
        best: tuple[float, str, RemoteAgent] | None = None
        for peer, agents, load in self._offering():
            if pinned and peer.id != pinned:
                continue
            offer = next((a for a in agents if a.name == agent and a.free > 0), None)
            if offer is not None and (best is None or (load, peer.id) < best[:2]):
                best = (load, peer.id, RemoteAgent(f"{agent}@{peer.id}", offer.level))
        return None if best is None else best[2]

    def offered(self) -> dict[str, Level]:
        return {a.name: a.level for _, agents, _ in self._offering() for a in agents}

    async def forward(self, record: TaskRecord, needs: Sequence[str]) -> RemoteState | None:
        agent, _, peer_id = record.assignee.partition("@")
        peer = self.federation.peers.get(peer_id)
        session = self.federation.session()
        if peer is None or session is None:
            return None
        asked = ForwardedTask(
            key=record.id, agent=agent, task=record.task, needs=list(needs), via=[self.federation.key.id]
        )
        try:
            status, body = await exchange(
                session,
                self.federation.key,
                peer,
                TASKS_PATH,
                asked.model_dump(),
                self.federation.settings.timeout_seconds,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("federation peer %s: giving task %s failed: %r; trying again", peer.id, record.id, exc)
            return None
        if status == 200:
            answer = _parse(TaskState, body, peer.id)
            return None if answer is None else answer.remote()
        if status in (429, 502, 503, 504) or status == 401:
            # Full, busy, paused, or not (yet) knowing this node: the task waits and is sent again.
            log.info("federation peer %s answered %s to task %s; trying again", peer.id, status, record.id)
            return None
        code, message = _error(body)
        return RemoteState(TaskStatus.REJECTED, f"{peer.id} refused the task: {message} ({code})")

    async def states(self, records: Sequence[TaskRecord]) -> dict[str, RemoteState]:
        by_peer: dict[str, list[TaskRecord]] = defaultdict(list)
        for record in records:
            by_peer[record.assignee.partition("@")[2]].append(record)
        found: dict[str, RemoteState] = {}
        live = {peer.id: peer for peer in self.federation.live()}
        session = self.federation.session()
        for peer_id, given in by_peer.items():
            peer = self.federation.peers.get(peer_id)
            gone = None
            if peer is None or not peer.forward_agents:
                gone = f"{peer_id} is no longer a peer this node gives tasks to"
            elif self.federation.membership.state(peer_id) is PeerState.DEAD:
                gone = f"{peer_id} stopped answering (dead)"
            if gone is not None:
                found |= {r.id: RemoteState(TaskStatus.FAILED, gone) for r in given}
            elif peer_id in live and session is not None:
                found |= await self._ask(session, live[peer_id], given)
        return found

    async def _ask(
        self, session: aiohttp.ClientSession, peer: PeerSettings, given: Sequence[TaskRecord]
    ) -> dict[str, RemoteState]:
        found: dict[str, RemoteState] = {}
        for start in range(0, len(given), STATES_MAX):
            keys = [r.id for r in given[start : start + STATES_MAX]]
            try:
                status, body = await exchange(
                    session,
                    self.federation.key,
                    peer,
                    TASK_STATES_PATH,
                    {"keys": keys},
                    self.federation.settings.timeout_seconds,
                )
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.info("federation peer %s: asking about tasks failed: %r", peer.id, exc)
                return found
            answer = _parse(StateList, body, peer.id) if status == 200 and body else None
            if answer is None:
                return found
            wanted = set(keys)
            found |= {s.key: s.remote() for s in answer.tasks if s.key in wanted}
        return found


def _parse(model: type[_M], body: bytes | None, peer: str) -> _M | None:
    try:
        return model.model_validate_json(body or b"")
    except ValidationError:
        log.info("federation peer %s sent a malformed %s", peer, model.__name__)
        return None


def _error(body: bytes | None) -> tuple[str, str]:
    """A peer's error answer's code and message, cut to size."""
    try:
        error = orjson.loads(body or b"")["error"]
        return str(error["code"])[:64], str(error["message"])[:500]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return "peer_failed", "no reason given"


__all__ = [
    "TASKS_PATH",
    "TASK_STATES_PATH",
    "ForwardedTask",
    "StateList",
    "TaskDesk",
    "TaskForwarding",
    "TaskState",
    "TaskStates",
]
