"""Delegation between agents: TASK_DELEGATE → TASK_ACCEPT or TASK_REJECT → TASK_COMPLETE.

The task's state lives in the store (queryable by either side); every step is also a message on
the bus, correlated by the task id. An agent delegates only to agents of a lower level (L1 to
L2 or L3, …); anything else is an escalation, upward.

**Agents elsewhere.** A task for an agent this node does not have goes to a peer node that
serves it (``RemoteAgents``, federation's side): the task is recorded here with the assignee's
address ``name@node-id``, and ``follow_remote`` moves it as the peer reports the agent's
progress, so the delegator hears TASK_ACCEPT and TASK_COMPLETE as from a local agent. Tasks
peers give this node's agents name ``peer:<node id>`` as their delegator; the peer asks for their
state, so no bus message goes back to it."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol

import anyio

from noosphere.agents.profile import AgentProfile
from noosphere.agents.registry import AgentRegistry
from noosphere.auth.principal import PEER_PREFIX, Level, Principal
from noosphere.bus import Bus, Envelope, Kind
from noosphere.errors import Conflict, NotFound, PermissionDenied, TimedOut
from noosphere.store.contract import MemoryStore, TaskRecord

log = logging.getLogger(__name__)

HUMANS = "admin"  # the mailbox escalations from L0 and L1 go to
LEASE_SECONDS = 60.0  # default lease of an accepted task; its runner renews it every third of this
REMOTE_FOLLOWED = 1000  # open tasks on peers' agents asked about in one check, oldest first
MAX_ATTEMPTS = 3  # runs of one task that may lapse (their node stopped) before it fails


class TaskStatus(StrEnum):
    DELEGATED = "delegated"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    COMPLETED = "completed"
    FAILED = "failed"


SETTLED = frozenset({TaskStatus.REJECTED, TaskStatus.COMPLETED, TaskStatus.FAILED})
_KIND = {
    TaskStatus.ACCEPTED: Kind.TASK_ACCEPT,
    TaskStatus.REJECTED: Kind.TASK_REJECT,
    TaskStatus.COMPLETED: Kind.TASK_COMPLETE,
    TaskStatus.FAILED: Kind.TASK_COMPLETE,
}
_RANK = {level: rank for rank, level in enumerate(Level)}  # L0 (top) .. L3


def outranks(upper: Level, lower: Level) -> bool:
    return _RANK[upper] < _RANK[lower]


def level_above(level: Level) -> Level | None:
    """The level an agent escalates to; None for L0 and L1, which escalate to a person."""
    rank = _RANK[level]
    return None if rank <= 1 else list(Level)[rank - 1]


def is_remote(address: str) -> bool:
    """An agent on a peer node (``name@node-id``); agent names never hold ``@``."""
    return "@" in address


@dataclass(frozen=True)
class RemoteAgent:
    address: str  # name@node-id
    level: Level


@dataclass(frozen=True)
class RemoteState:
    """A forwarded task's state as its peer reports it; ``known`` False if the peer never got it."""

    status: TaskStatus
    result: str | None = None
    known: bool = True


class RemoteAgents(Protocol):
    """Agents of peer nodes that take this node's tasks (``federation/tasks.py``)."""

    def find(self, name: str) -> RemoteAgent | None:
        """A live peer's agent ``name`` (or ``name@node-id``) with room for a task."""

    def offered(self) -> dict[str, Level]:
        """The names of the agents live peers offer, with their levels."""

    async def forward(self, record: TaskRecord, needs: Sequence[str]) -> RemoteState | None:
        """Hand the task to its peer; its state there, or None if the peer was not reached."""

    async def states(self, records: Sequence[TaskRecord]) -> dict[str, RemoteState]:
        """The peers' word on these tasks, by task id; a task whose peer was not reached is left
        out, and one whose peer is gone for good comes back failed."""


class Delegation:
    def __init__(
        self,
        store: MemoryStore,
        bus: Bus,
        registry: AgentRegistry,
        poll_seconds: float = 0.25,
        remote: RemoteAgents | None = None,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        self.store = store
        self.bus = bus
        self.registry = registry
        self.poll_seconds = poll_seconds
        self.lease_seconds = lease_seconds
        self.remote = remote  # peers' agents, once federation runs

    async def delegate(
        self,
        delegator: AgentProfile,
        assignee: str,
        task: str,
        needs: Sequence[str] = (),
        session: str | None = None,
    ) -> TaskRecord:
        """Record the task and send TASK_DELEGATE to ``assignee``'s mailbox; for an agent this
        node does not have, hand it to a live peer that serves one of that name."""
        found = None if is_remote(assignee) else await self.registry.find(assignee)
        if found is not None:
            self._check_rank(delegator, assignee, found.level)
            return await self.assign(delegator.name, assignee, task, needs, session)
        elsewhere = None if self.remote is None else self.remote.find(assignee)
        if elsewhere is None:
            raise NotFound(f"no agent named {assignee!r} here, nor on a live peer with room for a task")
        self._check_rank(delegator, assignee, elsewhere.level)
        record = self._record(delegator.name, elsewhere.address, task, session)
        await self.store.put_task(record)
        assert self.remote is not None
        state = await self.remote.forward(record, needs)
        return record if state is None else await self._follow(record, state)

    @staticmethod
    def _check_rank(delegator: AgentProfile, assignee: str, level: Level) -> None:
        if not outranks(delegator.level, level):
            raise PermissionDenied(
                f"{delegator.name} ({delegator.level}) delegates only to lower levels; {assignee} is "
                f"{level}: escalate instead"
            )

    @staticmethod
    def _record(
        delegator: str, assignee: str, task: str, session: str | None, task_id: str | None = None
    ) -> TaskRecord:
        now = datetime.now(UTC)
        return TaskRecord(
            id=task_id or "task_" + uuid.uuid4().hex[:16],
            delegator=delegator,
            assignee=assignee,
            task=task,
            status=TaskStatus.DELEGATED,
            created_at=now,
            updated_at=now,
            session=session,
        )

    async def assign(
        self,
        delegator: str,
        assignee: str,
        task: str,
        needs: Sequence[str] = (),
        session: str | None = None,
        task_id: str | None = None,
    ) -> TaskRecord:
        """Record a task for a local agent and put TASK_DELEGATE in its mailbox (no rank check:
        the caller made it)."""
        record = self._record(delegator, assignee, task, session, task_id)
        await self.store.put_task(record)
        payload = {"task_id": record.id, "task": task, "needs": list(needs)}
        await self.bus.send(
            Envelope(Kind.TASK_DELEGATE, delegator, payload, recipient=assignee, correlation_id=record.id)
        )
        return record

    async def follow_remote(self, every: float) -> None:
        """Move the tasks given to peers' agents as their peers report, forever."""
        while True:
            await self.check_remote()
            await anyio.sleep(every)

    async def check_remote(self) -> None:
        """Ask the peers about every open task given to one of their agents, once: a peer that
        never got its task (it was down) gets it again; a settled one is settled here."""
        if self.remote is None:
            return
        records = await self.store.open_tasks(None, REMOTE_FOLLOWED, on_peers=True)
        if not records:
            return
        states = await self.remote.states(records)
        for record in records:
            state = states.get(record.id)
            if state is not None and not state.known:
                state = await self.remote.forward(record, ())
            if state is not None:
                await self._follow(record, state)

    async def _follow(self, record: TaskRecord, state: RemoteState) -> TaskRecord:
        """Bring the local record of a forwarded task to the state its peer reports."""
        current = TaskStatus(record.status)
        if state.status is current or current in SETTLED or state.status is TaskStatus.DELEGATED:
            return record
        try:
            return await self._move(
                record.id,
                record.assignee,
                [TaskStatus.DELEGATED, TaskStatus.ACCEPTED],
                state.status,
                _KIND[state.status],
                state.result,
            )
        except Conflict:  # moved meanwhile (another check of the same task)
            return await self.get(record.id)

    async def accept(self, task_id: str, by: str) -> TaskRecord:
        return await self._move(
            task_id, by, [TaskStatus.DELEGATED], TaskStatus.ACCEPTED, Kind.TASK_ACCEPT, None
        )

    async def reject(self, task_id: str, by: str, reason: str) -> TaskRecord:
        return await self._move(
            task_id, by, [TaskStatus.DELEGATED], TaskStatus.REJECTED, Kind.TASK_REJECT, reason
        )

    async def complete(self, task_id: str, by: str, result: str) -> TaskRecord:
        return await self._move(
            task_id, by, [TaskStatus.ACCEPTED], TaskStatus.COMPLETED, Kind.TASK_COMPLETE, result
        )

    async def fail(self, task_id: str, by: str, reason: str) -> TaskRecord:
        return await self._move(
            task_id, by, [TaskStatus.ACCEPTED], TaskStatus.FAILED, Kind.TASK_COMPLETE, reason
        )

    async def hold(self, task_id: str) -> bool:
        """Renew the lease of an accepted task its runner is working on."""
        return await self.store.lease_task(task_id, datetime.now(UTC) + timedelta(seconds=self.lease_seconds))

    async def recover(self) -> list[TaskRecord]:
        """Tasks whose runner is gone (their lease lapsed: the node stopped mid-run) are delegated
        again, up to ``MAX_ATTEMPTS`` runs, then failed; the delegator hears either way."""
        now = datetime.now(UTC)
        settled = []
        for record in await self.store.lapsed_tasks(now, 100):
            attempt = record.attempts + 1
            if attempt < MAX_ATTEMPTS:
                status, note = TaskStatus.DELEGATED, None
            else:
                status = TaskStatus.FAILED
                note = f"the node running it stopped {attempt} times; given up"
            if not await self.store.reclaim_task(record.id, now, status, note, now):
                continue  # renewed or settled meanwhile
            if status is TaskStatus.DELEGATED:
                payload = {"task_id": record.id, "task": record.task, "needs": [], "attempt": attempt + 1}
                await self.bus.send(
                    Envelope(
                        Kind.TASK_DELEGATE,
                        record.delegator,
                        payload,
                        recipient=record.assignee,
                        correlation_id=record.id,
                    )
                )
                kind, update = (
                    Kind.STATUS,
                    {"task_id": record.id, "status": "resumed", "attempt": attempt + 1},
                )
            else:
                kind, update = (
                    Kind.TASK_COMPLETE,
                    {"task_id": record.id, "status": str(status), "result": note},
                )
            await self._tell(
                Envelope(kind, record.assignee, update, recipient=record.delegator, correlation_id=record.id)
            )
            settled.append(replace(record, status=status, attempts=attempt, lease_until=None))
        return settled

    async def get(self, task_id: str) -> TaskRecord:
        record = await self.store.task(task_id)
        if record is None:
            raise NotFound(f"no task {task_id!r}")
        return record

    async def get_for(self, caller: Principal, task_id: str) -> TaskRecord:
        """A task as ``caller`` may see it: people see all, an agent the tasks it is party to."""
        record = await self.get(task_id)
        if not caller.is_person and caller.name not in (record.delegator, record.assignee):
            raise PermissionDenied("an agent reads only its own tasks")
        return record

    async def recent(self, agent: str | None = None, limit: int = 50) -> list[TaskRecord]:
        return await self.store.tasks(agent, limit)

    async def wait(self, task_id: str, within: float) -> TaskRecord:
        """Wait until the task is completed, rejected or failed; ``TimedOut`` after ``within`` s."""
        with anyio.move_on_after(within):
            while True:
                record = await self.get(task_id)
                if record.status in SETTLED:
                    return record
                await anyio.sleep(self.poll_seconds)
        raise TimedOut(f"task {task_id} was not finished within {within:g}s")

    async def _move(
        self,
        task_id: str,
        by: str,
        before: Sequence[TaskStatus],
        status: TaskStatus,
        kind: Kind,
        result: str | None,
    ) -> TaskRecord:
        record = await self.get(task_id)
        if by != record.assignee:
            raise PermissionDenied(f"task {task_id} is {record.assignee}'s, not {by}'s")
        at = datetime.now(UTC)
        if not await self.store.move_task(task_id, [str(s) for s in before], status, result, at):
            raise Conflict(f"task {task_id} is {(await self.get(task_id)).status}; it cannot become {status}")
        payload = {"task_id": task_id, "status": str(status), "result": result}
        await self._tell(Envelope(kind, by, payload, recipient=record.delegator, correlation_id=task_id))
        return replace(record, status=status, result=result or record.result, updated_at=at)

    async def _tell(self, envelope: Envelope) -> None:
        """Tell a task's delegator how it went, unless it is a peer node (which asks instead)."""
        if not (envelope.recipient or "").startswith(PEER_PREFIX):
            await self.bus.send(envelope)


__all__ = [
    "HUMANS",
    "SETTLED",
    "Delegation",
    "RemoteAgent",
    "RemoteAgents",
    "RemoteState",
    "TaskStatus",
    "is_remote",
    "level_above",
    "outranks",
]
