"""REST: users (admin only). Tokens are shown once, at creation. Agents: ``agents_api``."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from noosphere.auth.principal import Level, PrincipalKind
from noosphere.auth.tokens import NAME_PATTERN
from noosphere.server.deps import NodeDep
from noosphere.store.contract import PrincipalRecord

router = APIRouter(prefix="/api/v1", tags=["principals"])


class CreatePrincipal(BaseModel):
    name: str = Field(json_schema_extra={"pattern": NAME_PATTERN.pattern})
    level: Level | None = None
    conversations: bool = Field(False, description="Users: keep their chat exchanges as conversations.")


class PrincipalOut(BaseModel):
    id: str
    kind: str
    name: str
    level: str | None
    created_at: datetime


class Created(PrincipalOut):
    token: str


async def _create(node: NodeDep, kind: PrincipalKind, body: CreatePrincipal) -> Created:
    principal, token = await node.auth.create(kind, body.name, body.level)
    record = await node.store.principal(principal.id)
    assert record is not None
    return Created(
        id=record.id,
        kind=record.kind,
        name=record.name,
        level=record.level,
        created_at=record.created_at,
        token=token,
    )


@router.post("/users", status_code=201, summary="Create a user; returns its token once")
async def create_user(body: CreatePrincipal, node: NodeDep) -> Created:
    created = await _create(node, PrincipalKind.USER, body.model_copy(update={"level": None}))
    if body.conversations:
        await node.auth.set_capture(body.name, True)
    return created


def _out(records: list[PrincipalRecord]) -> list[PrincipalOut]:
    return [
        PrincipalOut(id=r.id, kind=r.kind, name=r.name, level=r.level, created_at=r.created_at)
        for r in records
    ]


@router.get("/users", summary="List users")
async def list_users(node: NodeDep) -> list[PrincipalOut]:
    return _out(await node.auth.list_principals(PrincipalKind.USER))


@router.delete("/users/{name}", status_code=204, summary="Delete a user with everything they owned")
async def delete_user(name: str, node: NodeDep) -> None:
    await node.remove(PrincipalKind.USER, name)
