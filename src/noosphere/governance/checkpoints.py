"""Human checkpoints: a call that policy sent to a human waits here for a decision.

A request is persisted (who asks, which tool and subject, a digest of the arguments, the estimated
impact, why, until when) before anyone waits on it, so it survives a restart and can be decided
from another process (the CLI). People decide, never an agent: the admin any checkpoint, a user
those of agents whose profile names them ``owner`` or among its ``approvers``:

    approve   once, for the session, or always (the last two leave a standing grant)
    reject    the call is refused
    escalate  the approval passes to the admin as a new one, ``<id>-up``

Nobody deciding before the expiry is recorded as ``timeout`` (never ``rejected``); then, as
``governance.on_timeout`` says, the call is denied or escalated to the admin once. The arguments
are hashed again right before the call runs; a mismatch refuses to run it (``ArgumentsChanged``).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from noosphere.auth.principal import Principal, PrincipalKind
from noosphere.config import GovernanceSettings
from noosphere.digest import canonical_json, sha256_json
from noosphere.errors import ArgumentsChanged, Conflict, InvalidRequest, NotFound, PermissionDenied
from noosphere.governance.audit import AuditLog
from noosphere.governance.policy import ToolCall
from noosphere.store.contract import ApprovalRecord, MemoryStore

NODE_ACTOR = "node"
SWEEP_SECONDS = 5.0  # how often a running node records approvals nobody decided in time
_UP = "-up"  # suffix of the approval an escalation creates


class Verdict(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    ESCALATE = "escalate"


class Scope(StrEnum):
    ONCE = "once"
    SESSION = "session"
    ALWAYS = "always"


class Status(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    TIMEOUT = "timeout"
    ESCALATED = "escalated"


def check_arguments(record: ApprovalRecord, args: Mapping[str, Any]) -> None:
    """Refuse to run a call whose arguments differ from the ones a human approved."""
    if sha256_json(args) != record.args_digest:
        raise ArgumentsChanged(
            f"the arguments of {record.tool} changed after approval {record.id}; the call is refused"
        )


Deciders = Callable[[str], Awaitable[frozenset[str]]]  # requester → user ids who may decide


ARGS_KEPT = 64 * 1024  # characters of a call's arguments an approval keeps to show


def shown_arguments(args: Mapping[str, Any]) -> str:
    """The arguments as the person deciding sees them: canonical JSON, or, past ``ARGS_KEPT``
    characters, their start with the full size (the digest still binds the whole call)."""
    text = canonical_json(args)
    if len(text) <= ARGS_KEPT:
        return text
    return canonical_json({"truncated": True, "characters": len(text), "start": text[: ARGS_KEPT // 4]})


async def _nobody(_: str) -> frozenset[str]:
    return frozenset()


class Checkpoints:
    def __init__(
        self,
        store: MemoryStore,
        audit: AuditLog,
        settings: GovernanceSettings,
        poll_seconds: float = 0.5,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        deciders: Deciders = _nobody,
    ) -> None:
        self.store = store
        self.deciders = deciders  # the users an agent's profile names as its owner and approvers
        self.audit = audit
        self.settings = settings
        self.poll_seconds = poll_seconds  # how often a waiter looks for decisions made elsewhere
        self._now = now
        self._bells: dict[str, asyncio.Event] = {}  # rung when this process settles an approval

    @property
    def timeout(self) -> timedelta:
        return timedelta(minutes=self.settings.approval_timeout_minutes)

    async def granted(self, requester: str, call: ToolCall, session: str | None) -> bool:
        """Whether a standing grant (for ``session``, or always) already covers this call."""
        return await self.store.has_grant(requester, call.tool, call.subject, session)

    async def request(
        self,
        requester: str,
        level: str | None,
        call: ToolCall,
        args: Mapping[str, Any],
        reason: str,
        session: str | None = None,
    ) -> ApprovalRecord:
        """Persist a pending approval for ``call`` and audit it."""
        now = self._now()
        record = ApprovalRecord(
            id=uuid.uuid4().hex[:16],
            requester=requester,
            level=level,
            tool=call.tool,
            subject=call.subject,
            args_digest=sha256_json(args),
            args=shown_arguments(args),
            impact=call.impact,
            reason=reason,
            session=session,
            status=Status.PENDING,
            created_at=now,
            expires_at=now + self.timeout,
        )
        await self.store.put_approval(record)
        await self._audit(requester, "requested", record)
        return record

    async def get(self, approval_id: str) -> ApprovalRecord:
        record = await self.store.approval(approval_id)
        if record is None:
            raise NotFound(f"no approval {approval_id!r}")
        return record

    async def may_decide(self, person: Principal, record: ApprovalRecord) -> bool:
        """The admin decides every checkpoint; a user those of agents they own or are named
        approver of (``owner``, ``approvers`` in the agent's profile), unless escalated."""
        if person.is_admin:
            return True
        if person.kind is not PrincipalKind.USER or record.escalated_from is not None:
            return False
        return person.id in await self.deciders(record.requester)

    async def get_for(self, caller: Principal, approval_id: str) -> ApprovalRecord:
        """An approval as ``caller`` may see it: those it asked for, and a person those they may
        decide."""
        record = await self.get(approval_id)
        mine = record.requester == caller.mailbox
        if not mine and not await self.may_decide(caller, record):
            raise PermissionDenied(f"approval {approval_id} is not yours to see")
        return record

    async def recent_for(
        self, caller: Principal, status: Status | None = None, limit: int = 50
    ) -> list[ApprovalRecord]:
        """``recent``, of the approvals ``caller`` may decide (people only)."""
        if not caller.is_person:
            raise PermissionDenied("only people list approvals")
        records = await self.recent(status, limit if caller.is_admin else max(limit * 10, 500))
        return [r for r in records if await self.may_decide(caller, r)][:limit]

    async def recent(self, status: Status | None = None, limit: int = 50) -> list[ApprovalRecord]:
        """Newest first; pending ones that ran out of time are recorded as timed out first."""
        await self.expire_due()
        return await self.store.approvals(None if status is None else str(status), limit)

    async def decide(
        self,
        approval_id: str,
        decider: Principal,
        verdict: Verdict,
        scope: Scope = Scope.ONCE,
        note: str | None = None,
    ) -> ApprovalRecord:
        """Approve, reject or escalate a pending approval; ``Conflict`` if it is no longer pending."""
        record = await self.get(approval_id)
        if not decider.is_person:
            raise PermissionDenied("only people decide approvals; an agent escalates instead")
        if not await self.may_decide(decider, record):
            whose = "escalated to the admin" if record.escalated_from else f"not {decider.id}'s to decide"
            raise PermissionDenied(f"approval {record.id} is {whose}")
        if record.status != Status.PENDING:
            raise Conflict(f"approval {approval_id} is already {record.status}")
        if record.expires_at <= self._now():
            await self._expire(record)
            raise Conflict(f"approval {approval_id} timed out before the decision")
        if verdict is Verdict.APPROVE and scope is Scope.SESSION and record.session is None:
            raise InvalidRequest("this call belongs to no session; approve it once or always")
        if verdict is Verdict.ESCALATE and record.escalated_from is not None:
            raise Conflict(f"approval {approval_id} is already with the admin; approve or reject it")
        status = {
            Verdict.APPROVE: Status.APPROVED,
            Verdict.REJECT: Status.REJECTED,
            Verdict.ESCALATE: Status.ESCALATED,
        }[verdict]
        settled = await self._settle(
            record, status, decider.id, scope if verdict is Verdict.APPROVE else None, note
        )
        if settled is None:
            raise Conflict(f"approval {approval_id} was decided by someone else first")
        if verdict is Verdict.APPROVE and scope is not Scope.ONCE:
            session = record.session if scope is Scope.SESSION else None
            await self.store.put_grant(
                record.requester, record.tool, record.subject, session, decider.id, self._now()
            )
        if verdict is Verdict.ESCALATE:
            await self._escalate(settled, f"escalated by {decider.id}" + (f": {note}" if note else ""))
        return settled

    async def wait(self, approval_id: str) -> ApprovalRecord:
        """Wait until the approval (or the one it was escalated to) is settled; returns that record:
        ``approved``, ``rejected`` or ``timeout``. Expiry is enforced here as well as by the sweep."""
        waited: set[str] = set()
        try:
            return await self._wait(approval_id, waited)
        finally:
            for done in waited:  # bells of approvals settled by another process
                self._bells.pop(done, None)

    async def _wait(self, approval_id: str, waited: set[str]) -> ApprovalRecord:
        while True:
            record = await self.get(approval_id)
            if record.status == Status.PENDING and record.expires_at <= self._now():
                record = await self._expire(record) or await self.get(approval_id)
            if record.status in (Status.APPROVED, Status.REJECTED):
                return record
            if record.status != Status.PENDING:  # escalated or timed out: is there a successor?
                successor = await self.store.approval(record.id + _UP)
                if successor is not None:
                    approval_id = successor.id
                    continue
                if record.status == Status.TIMEOUT and not self._escalates(record):
                    return record
                # Escalated, and the process that escalated has not written the successor yet.
            bell = self._bells.setdefault(approval_id, asyncio.Event())
            waited.add(approval_id)
            delay = self.poll_seconds
            if record.status == Status.PENDING:
                delay = max(0.0, min(delay, (record.expires_at - self._now()).total_seconds()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(bell.wait(), delay)

    async def expire_due(self) -> list[ApprovalRecord]:
        """Record every pending approval past its expiry as ``timeout`` (and escalate per policy)."""
        expired = []
        for record in await self.store.due_approvals(self._now()):
            settled = await self._expire(record)
            if settled is not None:
                expired.append(settled)
        return expired

    def _escalates(self, record: ApprovalRecord) -> bool:
        """Whether a timeout of ``record`` passes it to the admin (once) rather than denying it."""
        return self.settings.on_timeout == "escalate" and record.escalated_from is None

    async def _expire(self, record: ApprovalRecord) -> ApprovalRecord | None:
        escalate = self._escalates(record)
        note = "no decision in time; escalated to the admin" if escalate else "no decision in time; denied"
        settled = await self._settle(record, Status.TIMEOUT, NODE_ACTOR, None, note)
        if settled is not None and escalate:
            await self._escalate(settled, f"timed out after {self.timeout}")
        return settled

    async def _escalate(self, record: ApprovalRecord, reason: str) -> ApprovalRecord:
        now = self._now()
        successor = replace(
            record,
            id=record.id + _UP,
            reason=f"{record.reason}; {reason}",
            status=Status.PENDING,
            created_at=now,
            expires_at=now + self.timeout,
            decided_by=None,
            decided_at=None,
            scope=None,
            note=None,
            escalated_from=record.id,
        )
        await self.store.put_approval(successor)
        await self._audit(NODE_ACTOR, "requested", successor)
        return successor

    async def _settle(
        self, record: ApprovalRecord, status: Status, by: str, scope: Scope | None, note: str | None
    ) -> ApprovalRecord | None:
        at = self._now()
        scope_text = None if scope is None else str(scope)
        if not await self.store.settle_approval(record.id, status, by, at, scope_text, note):
            return None
        settled = replace(record, status=status, decided_by=by, decided_at=at, scope=scope_text, note=note)
        await self._audit(by, str(status), settled)
        bell = self._bells.pop(record.id, None)
        if bell is not None:
            bell.set()
        return settled

    async def _audit(self, actor: str, event: str, record: ApprovalRecord) -> None:
        await self.audit.append(
            actor,
            "approval",
            {
                "event": event,
                "id": record.id,
                "requester": record.requester,
                "tool": record.tool,
                "subject": record.subject,
                "args_sha256": record.args_digest,
                "impact": record.impact,
                "reason": record.reason,
                "scope": record.scope,
                "note": record.note,
                "expires_at": record.expires_at.isoformat(),
            },
        )


__all__ = ["SWEEP_SECONDS", "Checkpoints", "Scope", "Status", "Verdict", "check_arguments"]
