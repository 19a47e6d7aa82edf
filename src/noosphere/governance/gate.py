"""The chain every tool call passes: policy decision → (if asked) a human checkpoint → audit.

``clear`` decides and, when policy asks, waits for a person; ``record`` audits how the call went.
The call itself runs in between, after ``check_arguments`` confirmed that what runs is what was
approved. ``admit`` is ``clear`` for callers outside the node (MCP, REST, the CLI), which cannot
be held while a person decides: an "ask" answers ``approval_required`` with the approval's id,
and the caller repeats the same call once it is decided. Either way an approval clears one call:
it is marked used when the call runs (or its refusal is reported), so it is never replayed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio

from noosphere.digest import sha256_json
from noosphere.errors import ApprovalDenied, ApprovalRequired, PermissionDenied
from noosphere.governance.audit import AuditLog
from noosphere.governance.checkpoints import Checkpoints, Status, check_arguments
from noosphere.governance.policy import Caller, Decision, Effect, Policy, ToolCall, decide
from noosphere.store.contract import ApprovalRecord

OnWait = Callable[[ApprovalRecord], Awaitable[None]]


@dataclass(frozen=True)
class Clearance:
    decision: Decision
    digest: str  # of the arguments cleared
    approval: ApprovalRecord | None = None  # the approval a person gave, when one was needed
    granted: bool = False  # a standing grant (session/always) covered it
    # The policy entry of an allowed call, written while the call runs; ``record`` waits for it,
    # so the log holds the decision before the outcome.
    logged: asyncio.Future[int] | None = field(default=None, compare=False)

    def check(self, args: Mapping[str, Any]) -> None:
        """Refuse to run if the arguments are not the ones cleared."""
        if self.approval is not None:
            check_arguments(self.approval, args)


class Gate:
    def __init__(self, checkpoints: Checkpoints, audit: AuditLog) -> None:
        self.checkpoints = checkpoints
        self.audit = audit

    async def clear(
        self,
        policy: Policy,
        caller: Caller,
        call: ToolCall,
        args: Mapping[str, Any],
        session: str | None,
        on_wait: OnWait | None = None,
    ) -> Clearance:
        """The policy decision for ``call`` (audited); a denial raises ``PermissionDenied``, and an
        "ask" waits for a person (``ApprovalDenied`` when rejected or timed out)."""
        decided = await self._decide(policy, caller, call, args, session)
        if isinstance(decided, Clearance):
            return decided
        decision, digest = decided
        level = None if caller.level is None else caller.level.value
        asked = await self.checkpoints.request(caller.name, level, call, args, decision.reason, session)
        if on_wait is not None:
            await on_wait(asked)
        return await self._settled(decision, digest, call, await self.checkpoints.wait(asked.id))

    async def admit(
        self,
        policy: Policy,
        caller: Caller,
        call: ToolCall,
        args: Mapping[str, Any],
        session: str | None = None,
        wait_seconds: float = 0.0,
        askable: bool = True,
    ) -> Clearance:
        """``clear`` without holding the caller: an "ask" uses this exact call's approval once a
        person decided it, and otherwise raises ``ApprovalRequired`` naming it (requested now,
        unless one is pending already), after waiting up to ``wait_seconds`` for the decision.
        A call that is not ``askable`` (deciding approvals) is refused where a rule asks."""
        decided = await self._decide(policy, caller, call, args, session)
        if isinstance(decided, Clearance):
            return decided
        decision, digest = decided
        if not askable:
            raise PermissionDenied(f"{call.tool}: {decision.reason}, but it cannot wait for an approval")
        await self.checkpoints.expire_due()
        record = await self.checkpoints.store.open_approval(caller.name, call.tool, digest)
        if record is None:
            level = None if caller.level is None else caller.level.value
            record = await self.checkpoints.request(caller.name, level, call, args, decision.reason, session)
        if record.status == Status.PENDING and wait_seconds > 0:
            with anyio.move_on_after(wait_seconds):
                record = await self.checkpoints.wait(record.id)
        if record.status in (Status.PENDING, Status.ESCALATED):
            raise ApprovalRequired(
                f"{call.tool}: {decision.reason}; approval {record.id} waits for a person until "
                f"{record.expires_at.isoformat()}. Once it is approved, make the same call again.",
                record.id,
                record.expires_at.isoformat(),
            )
        return await self._settled(decision, digest, call, record)

    async def _decide(
        self, policy: Policy, caller: Caller, call: ToolCall, args: Mapping[str, Any], session: str | None
    ) -> Clearance | tuple[Decision, str]:
        """Decide and audit; a clearance when no person is needed, else the "ask" to put to one."""
        decision = decide(policy, caller, call)
        digest = sha256_json(args)
        entry = asyncio.ensure_future(
            self.audit.append(
                caller.name,
                "policy",
                {
                    "tool": call.tool,
                    "subject": call.subject,
                    "impact": call.impact,
                    "writes": call.writes,
                    "effect": str(decision.effect),
                    "reason": decision.reason,
                    "rule": decision.rule,
                    "args_sha256": digest,
                },
            )
        )
        if decision.effect is Effect.ALLOW:  # the call need not wait for its entry to be written
            return Clearance(decision, digest, logged=entry)
        await entry
        if decision.effect is Effect.DENY:
            raise PermissionDenied(f"{call.tool}: {decision.reason}")
        if await self.checkpoints.granted(caller.name, call, session):
            return Clearance(decision, digest, granted=True)
        return decision, digest

    async def _settled(
        self, decision: Decision, digest: str, call: ToolCall, settled: ApprovalRecord
    ) -> Clearance:
        """Use a decided approval: a clearance if approved, else ``ApprovalDenied``. An approval
        clears one call; one used already (a replay) is refused."""
        now = datetime.now(UTC)
        used = await self.checkpoints.store.use_approval(settled.id, now)
        if settled.escalated_from is not None:  # the escalated original is answered by this one
            await self.checkpoints.store.use_approval(settled.escalated_from, now)
        if settled.status != Status.APPROVED:
            by = f" by {settled.decided_by}" if settled.status == Status.REJECTED else ""
            note = f": {settled.note}" if settled.note else ""
            raise ApprovalDenied(f"{call.tool}: approval {settled.id} {settled.status}{by}{note}")
        if not used:
            raise ApprovalDenied(f"{call.tool}: approval {settled.id} cleared a call already")
        return Clearance(decision, digest, approval=settled)

    async def record(
        self, caller: Caller, call: ToolCall, clearance: Clearance, outcome: str, result_digest: str | None
    ) -> None:
        """Audit one finished (or refused) call: ``outcome`` is ``ok`` or an error code."""
        if clearance.logged is not None:
            await clearance.logged
        await self.audit.append(
            caller.name,
            "tool",
            {
                "tool": call.tool,
                "subject": call.subject,
                "args_sha256": clearance.digest,
                "approval": None if clearance.approval is None else clearance.approval.id,
                "granted": clearance.granted,
                "outcome": outcome,
                "result_sha256": result_digest,
            },
        )


__all__ = ["Clearance", "Gate"]
