"""The chain every tool call passes: policy decision → (if asked) a human checkpoint → audit.

``clear`` decides and, when policy asks, waits for a person; ``record`` audits how the call went.
The call itself runs in between, after ``check_arguments`` confirmed that what runs is what was
approved."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from noosphere.digest import sha256_json
from noosphere.errors import ApprovalDenied, PermissionDenied
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
        decision = decide(policy, caller, call)
        digest = sha256_json(args)
        await self.audit.append(
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
        if decision.effect is Effect.DENY:
            raise PermissionDenied(f"{call.tool}: {decision.reason}")
        if decision.effect is Effect.ALLOW:
            return Clearance(decision, digest)
        if await self.checkpoints.granted(caller.name, call, session):
            return Clearance(decision, digest, granted=True)
        level = None if caller.level is None else caller.level.value
        asked = await self.checkpoints.request(caller.name, level, call, args, decision.reason, session)
        if on_wait is not None:
            await on_wait(asked)
        settled = await self.checkpoints.wait(asked.id)
        if settled.status != Status.APPROVED:
            by = f" by {settled.decided_by}" if settled.status == Status.REJECTED else ""
            note = f": {settled.note}" if settled.note else ""
            raise ApprovalDenied(f"{call.tool}: approval {settled.id} {settled.status}{by}{note}")
        return Clearance(decision, digest, approval=settled)

    async def record(
        self, caller: Caller, call: ToolCall, clearance: Clearance, outcome: str, result_digest: str | None
    ) -> None:
        """Audit one finished (or refused) call: ``outcome`` is ``ok`` or an error code."""
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
