"""REST: the audit log (admin only): its entries, its signed tree heads, and what this node found
checking its peers' logs. Verifying the log from outside is ``noosphere audit verify``."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from noosphere.memory.model import INT64_MAX
from noosphere.server.deps import NodeDep

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


class AuditEntryOut(BaseModel):
    seq: int
    leaf: str = Field(description="RFC 9162 leaf hash, hex.")
    at: str
    actor: str
    kind: str
    body: dict[str, Any]


class TreeHeadOut(BaseModel):
    size: int
    root: str
    at: datetime
    signature: str


class WitnessOut(BaseModel):
    peer: str
    ok: bool
    size: int
    root: str
    checked_at: datetime
    problem: str | None


class Heads(BaseModel):
    entries: int = Field(description="Entries in the log.")
    heads: list[TreeHeadOut] = Field(description="The newest signed tree heads, newest first.")
    witnessed: list[WitnessOut] = Field(description="Peers' logs this node checked, and what it found.")


@router.get("", summary="Audit entries, oldest first, from seq `start`")
async def entries(
    node: NodeDep,
    start: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditEntryOut]:
    out = []
    for entry in await node.store.audit_entries(start, limit):
        fields = json.loads(entry.entry)
        out.append(
            AuditEntryOut(
                seq=entry.seq,
                leaf=entry.leaf.hex(),
                at=str(fields.get("at", "")),
                actor=str(fields.get("actor", "")),
                kind=str(fields.get("kind", "")),
                body=fields.get("body") or {},
            )
        )
    return out


@router.get("/heads", summary="The log's size, its newest signed tree heads and peers' witness status")
async def heads(node: NodeDep, limit: Annotated[int, Query(ge=1, le=1000)] = 10) -> Heads:
    signed = (await node.store.tree_heads())[-limit:]
    witnessed = await node.store.witnessed()
    size = max([node.audit.size, *(h.size for h in signed)])
    return Heads(
        entries=size,
        heads=[
            TreeHeadOut(size=h.size, root=h.root.hex(), at=h.at, signature=h.signature.hex())
            for h in reversed(signed)
        ],
        witnessed=[
            WitnessOut(
                peer=w.peer,
                ok=w.problem is None,
                size=w.head.size,
                root=w.head.root.hex(),
                checked_at=w.checked_at,
                problem=w.problem,
            )
            for w in witnessed
        ],
    )


__all__ = ["router"]
