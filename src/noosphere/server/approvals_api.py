"""REST: human checkpoints. People (the admin, users) list and decide approvals; an agent may
read the approvals it asked for."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from noosphere.governance.checkpoints import Scope, Status, Verdict
from noosphere.server.deps import NodeDep, PrincipalDep
from noosphere.store.contract import ApprovalRecord

router = APIRouter(prefix="/api/v1/approvals", tags=["approvals"])


class ApprovalOut(BaseModel):
    id: str
    requester: str
    level: str | None
    tool: str
    subject: str | None
    args_digest: str = Field(description="SHA-256 of the canonical arguments; re-checked before the call.")
    impact: float
    reason: str
    session: str | None
    status: Status
    created_at: datetime
    expires_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    scope: Scope | None
    note: str | None
    escalated_from: str | None = Field(description="Set on an escalation; only the admin decides it.")
    arguments: Any = Field(
        None, description="The call's arguments as the agent sent them (a long call's start only)."
    )

    @classmethod
    def of(cls, record: ApprovalRecord) -> ApprovalOut:
        out = cls.model_validate(record, from_attributes=True)
        out.arguments = None if record.args is None else json.loads(record.args)
        return out


class DecisionIn(BaseModel):
    scope: Scope = Field(Scope.ONCE, description="Approve only: once, for the session, or always.")
    note: str | None = Field(None, max_length=2000)


@router.get("", summary="Approvals, newest first (people only)")
async def list_approvals(
    node: NodeDep,
    caller: PrincipalDep,
    status: Status | None = None,
    limit: int = Query(50, ge=1, le=1000),
) -> list[ApprovalOut]:
    records = await node.governor.run(
        caller,
        "approvals_list",
        {"status": status, "limit": limit},
        lambda: node.checkpoints.recent_for(caller, status, limit),
    )
    return [ApprovalOut.of(r) for r in records]


@router.get("/{approval_id}", summary="One approval (people, or the agent that asked)")
async def get_approval(approval_id: str, node: NodeDep, caller: PrincipalDep) -> ApprovalOut:
    record = await node.governor.run(
        caller, "approval_get", {"id": approval_id}, lambda: node.checkpoints.get_for(caller, approval_id)
    )
    return ApprovalOut.of(record)


async def decide(
    node: NodeDep, caller: PrincipalDep, approval_id: str, verdict: Verdict, body: DecisionIn
) -> ApprovalOut:
    record = await node.governor.run(
        caller,
        "approval_decide",
        {"id": approval_id, "verdict": verdict, **body.model_dump(mode="json")},
        lambda: node.checkpoints.decide(approval_id, caller, verdict, body.scope, body.note),
    )
    return ApprovalOut.of(record)


@router.post("/{approval_id}/approve", summary="Approve: once, for the session, or always")
async def approve(approval_id: str, body: DecisionIn, node: NodeDep, caller: PrincipalDep) -> ApprovalOut:
    return await decide(node, caller, approval_id, Verdict.APPROVE, body)


@router.post("/{approval_id}/reject", summary="Reject: the call is refused")
async def reject(approval_id: str, body: DecisionIn, node: NodeDep, caller: PrincipalDep) -> ApprovalOut:
    return await decide(node, caller, approval_id, Verdict.REJECT, body)


@router.post("/{approval_id}/escalate", summary="Pass the decision to the admin")
async def escalate(approval_id: str, body: DecisionIn, node: NodeDep, caller: PrincipalDep) -> ApprovalOut:
    return await decide(node, caller, approval_id, Verdict.ESCALATE, body)
