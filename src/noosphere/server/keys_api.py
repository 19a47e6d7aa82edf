"""REST: users' API keys for the OpenAI-compatible gateway (create, list with what each spent,
revoke) and the ledger's usage summary (admin only)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from noosphere.auth.principal import key_account
from noosphere.node import Node
from noosphere.pool.budget import BudgetPeriod, period_key
from noosphere.server.deps import NodeDep
from noosphere.store.contract import ApiKeyRecord

router = APIRouter(prefix="/api/v1", tags=["keys"])

UsageGroup = Literal["principal", "key_id", "worker", "model"]


class KeyIn(BaseModel):
    user: str = Field(description="The user the key belongs to (by name).")
    name: str = Field("default", min_length=1, max_length=64, description="A label for the key.")
    rpm: int | None = Field(None, ge=1, le=1_000_000, description="Requests per minute.")
    tpm: int | None = Field(None, ge=1, le=1_000_000_000, description="Tokens per minute.")
    budget: float | None = Field(None, ge=0, le=1e15, description="Credits it may spend per period.")
    budget_period: BudgetPeriod = Field("total", description="When the budget starts again.")
    conversations: bool = Field(False, description="Keep its chat exchanges as conversation memories.")


class KeyOut(BaseModel):
    id: str
    user: str
    name: str
    rpm: int | None
    tpm: int | None
    budget: float | None
    budget_period: str
    conversations: bool
    revoked: bool = False
    spent: float = Field(0.0, description="Credits spent in the current budget period.")
    created_at: datetime


class KeyCreated(KeyOut):
    key: str = Field(description="The key itself, shown once.")


class UsageOut(BaseModel):
    group: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    credits: float


def _out(record: ApiKeyRecord, spent: float = 0.0) -> KeyOut:
    return KeyOut(
        id=record.id,
        user=record.user_id,
        name=record.name,
        rpm=record.rpm,
        tpm=record.tpm,
        budget=record.budget,
        budget_period=record.budget_period,
        conversations=record.capture,
        revoked=record.revoked,
        spent=spent,
        created_at=record.created_at,
    )


async def create(node: Node, body: KeyIn) -> KeyCreated:
    """A new key as ``body`` describes it (the route's work, and the dashboard's)."""
    record, secret = await node.auth.create_api_key(
        body.user, body.name, body.rpm, body.tpm, body.budget, body.budget_period, body.conversations
    )
    return KeyCreated(**_out(record).model_dump(), key=secret)


@router.post("/keys", status_code=201, summary="Create an API key for a user; returns the key once")
async def create_key(body: KeyIn, node: NodeDep) -> KeyCreated:
    return await create(node, body)


@router.get("/keys", summary="API keys (of one user, or all) with their limits and what they spent")
async def list_keys(node: NodeDep, user: Annotated[str | None, Query(max_length=64)] = None) -> list[KeyOut]:
    now = datetime.now(UTC)
    return [
        _out(k, -await node.store.balance(key_account(k.id), period_key(k.budget_period, now)))
        for k in await node.auth.api_keys(user)
    ]


@router.delete("/keys/{key_id}", status_code=204, summary="Revoke an API key (its history stays)")
async def revoke_key(key_id: str, node: NodeDep) -> None:
    await node.auth.revoke_api_key(key_id)


@router.get("/usage", summary="Tokens and credits from the ledger, grouped")
async def usage(
    node: NodeDep,
    by: Annotated[UsageGroup, Query(description="Group by principal, key_id, worker or model.")] = "key_id",
    days: Annotated[float | None, Query(gt=0, le=36500, description="Only the last N days.")] = None,
) -> list[UsageOut]:
    since = None if days is None else datetime.now(UTC) - timedelta(days=days)
    rows = await node.store.usage_summary(by, since)
    return [
        UsageOut(
            group=r.group,
            requests=r.requests,
            prompt_tokens=r.prompt_tokens,
            completion_tokens=r.completion_tokens,
            credits=r.credits,
        )
        for r in rows
    ]


__all__ = ["router"]
