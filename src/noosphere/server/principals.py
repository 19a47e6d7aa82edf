"""REST: users (admin only). Tokens are shown once, at creation. Agents: ``agents_api``."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from noosphere.auth.principal import Level, PrincipalKind, principal_id
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


class TokenOut(BaseModel):
    id: str
    token: str = Field(description="Shown once; the principal's previous token stops working.")


class WorkerTokenIn(BaseModel):
    models: list[str] | None = Field(
        None, max_length=256, description="Model names the worker may serve (default: any)."
    )


class WorkerTokenOut(TokenOut):
    models: list[str] | None


class SecretReset(BaseModel):
    reset: bool = Field(description="False: the user had no conversation secret yet.")


@router.post("/users/{name}/token", summary="Issue a new token for a user (the old one stops working)")
async def user_token(name: str, node: NodeDep) -> TokenOut:
    token = await node.auth.rotate(PrincipalKind.USER, name)
    return TokenOut(id=principal_id(PrincipalKind.USER, name), token=token)


@router.post("/agents/{name}/token", summary="Issue a new token for an agent (the old one stops working)")
async def agent_token(name: str, node: NodeDep) -> TokenOut:
    token = await node.auth.rotate(PrincipalKind.AGENT, name)
    return TokenOut(id=principal_id(PrincipalKind.AGENT, name), token=token)


@router.post(
    "/workers/{name}/token",
    summary="Issue a token for a pool worker (creating it, or replacing its old token)",
)
async def worker_token(name: str, body: WorkerTokenIn, node: NodeDep) -> WorkerTokenOut:
    token = await node.auth.issue(PrincipalKind.WORKER, name, body.models)
    return WorkerTokenOut(id=principal_id(PrincipalKind.WORKER, name), models=body.models, token=token)


@router.post(
    "/users/{name}/reset-secret",
    summary="Let a user who lost their conversation secret choose a new one (old conversations stay sealed)",
)
async def reset_secret(name: str, node: NodeDep) -> SecretReset:
    return SecretReset(reset=await node.reset_secret(name))
