"""Delegation between agents: TASK_DELEGATE → TASK_ACCEPT or TASK_REJECT → TASK_COMPLETE.

The task's state lives in the store (queryable by either side); every step is also a message on
the bus, correlated by the task id. An agent delegates only to agents of a lower level (L1 to
L2 or L3, …); anything else is an escalation, upward."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import anyio

from noosphere.agents.profile import AgentProfile
from noosphere.agents.registry import AgentRegistry
from noosphere.auth.principal import Level, Principal
from noosphere.bus import Bus, Envelope, Kind
from noosphere.errors import Conflict, NotFound, PermissionDenied, TimedOut
from noosphere.store.contract import MemoryStore, TaskRecord

HUMANS = "admin"  # the mailbox escalations from L0 and L1 go to
LEASE_SECONDS = 60.0  # an accepted task's runner renews its lease every third of this
MAX_ATTEMPTS = 3  # runs of one task that may lapse (their node stopped) before it fails


class TaskStatus(StrEnum):
    DELEGATED = "delegated"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    COMPLETED = "completed"
    FAILED = "failed"


SETTLED = frozenset({TaskStatus.REJECTED, TaskStatus.COMPLETED, TaskStatus.FAILED})
_RANK = {level: rank for rank, level in enumerate(Level)}  # L0 (top) .. L3


def outranks(upper: Level, lower: Level) -> bool:
    return _RANK[upper] < _RANK[lower]


def level_above(level: Level) -> Level | None:
    """The level an agent escalates to; None for L0 and L1, which escalate to a person."""
    rank = _RANK[level]
    return None if rank <= 1 else list(Level)[rank - 1]


class Delegation:
    def __init__(
        self, store: MemoryStore, bus: Bus, registry: AgentRegistry, poll_seconds: float = 0.25
    ) -> None:
        self.store = store
        self.bus = bus
        self.registry = registry
        self.poll_seconds = poll_seconds

    async def delegate(
        self,
        delegator: AgentProfile,
        assignee: str,
        task: str,
        needs: Sequence[str] = (),
        session: str | None = None,
    ) -> TaskRecord:
        """Record the task and send TASK_DELEGATE to ``assignee``'s mailbox."""
        target = await self.registry.get(assignee)
        if not outranks(delegator.level, target.level):
            raise PermissionDenied(
                f"{delegator.name} ({delegator.level}) delegates only to lower levels; {assignee} is "
                f"{target.level}: escalate instead"
            )
        now = datetime.now(UTC)
        record = TaskRecord(
            id="task_" + uuid.uuid4().hex[:16],
            delegator=delegator.name,
            assignee=assignee,
            task=task,
            status=TaskStatus.DELEGATED,
            created_at=now,
            updated_at=now,
            session=session,
        )
        await self.store.put_task(record)
        payload = {"task_id": record.id, "task": task, "needs": list(needs)}
        await self.bus.send(
            Envelope(
                Kind.TASK_DELEGATE, delegator.name, payload, recipient=assignee, correlation_id=record.id
            )
        )
        return record

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
        return await self.store.lease_task(task_id, datetime.now(UTC) + timedelta(seconds=LEASE_SECONDS))

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
            await self.bus.send(
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
        await self.bus.send(Envelope(kind, by, payload, recipient=record.delegator, correlation_id=task_id))
        return replace(record, status=status, result=result or record.result, updated_at=at)


__all__ = ["HUMANS", "SETTLED", "Delegation", "TaskStatus", "level_above", "outranks"]
