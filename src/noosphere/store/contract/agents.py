"""Agents' profiles and the tasks they delegate to each other."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class TaskRecord:
    """A task one agent delegated to another: TASK_DELEGATE → ACCEPT/REJECT → COMPLETE."""

    id: str
    delegator: str
    assignee: str
    task: str
    status: str  # delegated | accepted | rejected | completed | failed
    created_at: datetime
    updated_at: datetime
    result: str | None = None  # the answer, or why it was rejected or failed
    session: str | None = None  # the delegator's session
    lease_until: datetime | None = None  # an accepted task's runner renews this while it works
    attempts: int = 0  # runs whose lease lapsed (their node stopped)


class Agents(Protocol):
    """Every method is one transaction."""

    async def put_agent_profile(self, name: str, profile: str, at: datetime) -> None:
        """Create or replace an agent's profile (JSON text)."""

    async def agent_profiles(self, name: str | None = None) -> list[str]:
        """Profiles (JSON text) by name; only ``name``'s when given."""

    async def delete_agent_profile(self, name: str) -> bool: ...

    async def put_task(self, record: TaskRecord) -> None: ...

    async def task(self, task_id: str) -> TaskRecord | None: ...

    async def tasks(self, agent: str | None, limit: int) -> list[TaskRecord]:
        """Newest first; with ``agent``, the tasks it delegated or was given."""

    async def open_tasks(self, delegator: str | None, limit: int, on_peers: bool = False) -> list[TaskRecord]:
        """Tasks not settled yet (delegated or accepted), oldest first; with ``delegator``, only
        those it gave; with ``on_peers``, only those given to peers' agents (``name@node-id``)."""

    async def lease_task(self, task_id: str, until: datetime) -> bool:
        """Hold an accepted task until ``until`` (its runner renews); False if it is not accepted."""

    async def lapsed_tasks(self, now: datetime, limit: int) -> list[TaskRecord]:
        """Accepted tasks whose lease ran out before ``now``: their runner is gone."""

    async def reclaim_task(
        self, task_id: str, lapsed_before: datetime, status: str, result: str | None, at: datetime
    ) -> bool:
        """Move an accepted task whose lease lapsed before ``lapsed_before`` to ``status``,
        counting the attempt and dropping the lease; False if it was renewed or moved meanwhile."""

    async def move_task(
        self, task_id: str, before: Sequence[str], status: str, result: str | None, at: datetime
    ) -> bool:
        """Move a task to ``status`` if it is in one of ``before`` (compare and set)."""
