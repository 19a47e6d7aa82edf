"""Human checkpoints: approval requests, their decisions and standing grants."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class ApprovalRecord:
    """A call that policy sent to a human, and what became of it."""

    id: str
    requester: str  # the caller's bus address (an agent's name, a principal id)
    level: str | None
    tool: str
    subject: str | None
    args_digest: str  # SHA-256 of the canonical arguments; re-checked before the call runs
    impact: float
    reason: str  # why a human is asked (the policy decision)
    session: str | None
    status: str  # pending | approved | rejected | timeout | escalated
    created_at: datetime
    expires_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None
    scope: str | None = None  # once | session | always, when approved
    note: str | None = None
    escalated_from: str | None = None  # the approval this one escalates; only the admin decides it
    used_at: datetime | None = None  # when the call it cleared ran, or its refusal was reported
    args: str | None = None  # the call's arguments (canonical JSON, bounded), shown to the person deciding


class Approvals(Protocol):
    """Every method is one transaction."""

    async def put_approval(self, record: ApprovalRecord) -> None: ...

    async def approval(self, approval_id: str) -> ApprovalRecord | None: ...

    async def approvals(self, status: str | None, limit: int) -> list[ApprovalRecord]:
        """Newest first."""

    async def settle_approval(
        self, approval_id: str, status: str, by: str, at: datetime, scope: str | None, note: str | None
    ) -> bool:
        """Record a decision if the approval is still pending (compare and set); False otherwise."""

    async def due_approvals(self, now: datetime) -> list[ApprovalRecord]:
        """Pending approvals whose time ran out."""

    async def open_approval(self, requester: str, tool: str, args_digest: str) -> ApprovalRecord | None:
        """The newest approval of this exact call not used yet, unless it was escalated (its
        successor is the one to look at): pending, or decided and waiting to be used."""

    async def use_approval(self, approval_id: str, at: datetime) -> bool:
        """Mark a decided approval used (compare and set); False if it was used already."""

    async def put_grant(
        self, requester: str, tool: str, subject: str | None, session: str | None, by: str, at: datetime
    ) -> None:
        """A standing approval: for one session, or (``session=None``) always."""

    async def has_grant(self, requester: str, tool: str, subject: str | None, session: str | None) -> bool:
        """Whether an "always" grant, or one for ``session``, covers this call."""
