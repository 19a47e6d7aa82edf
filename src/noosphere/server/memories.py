"""REST: ``/api/v1/memories``. Parse, call the memory service, serialise."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field, StringConstraints, ValidationError

from noosphere.errors import InvalidRequest
from noosphere.memory.model import (
    KIND_PATTERN,
    TAG_PATTERN,
    ListQuery,
    Memory,
    MemoryDraft,
    Page,
    SearchHit,
    SearchQuery,
    Zone,
)
from noosphere.server.deps import NodeDep, PrincipalDep
from noosphere.server.errors import validation_message

router = APIRouter(prefix="/api/v1/memories", tags=["memories"])


class StoreMany(BaseModel):
    items: list[MemoryDraft] = Field(min_length=1)


class Stored(BaseModel):
    items: list[Memory]


class SearchResults(BaseModel):
    hits: list[SearchHit]


class Forgotten(BaseModel):
    deleted: int


@router.post("", status_code=201, summary="Store one memory")
async def store(draft: MemoryDraft, node: NodeDep, principal: PrincipalDep) -> Memory:
    args = draft.model_dump(mode="json")
    return await node.governor.run(
        principal, "memory_store", args, lambda: node.memory.store_one(principal, draft)
    )


@router.post("/batch", status_code=201, summary="Store many memories in one transaction")
async def store_many(body: StoreMany, node: NodeDep, principal: PrincipalDep) -> Stored:
    stored = await node.governor.run(
        principal,
        "memory_store_many",
        body.model_dump(mode="json"),
        lambda: node.memory.store_many(principal, body.items),
    )
    return Stored(items=stored)


class Collected(BaseModel):
    expired: int = Field(description="Expired memories purged.")
    tombstones: int = Field(description="Tombstones past their retention purged.")


@router.post("/gc", summary="Purge expired memories and old tombstones now (admin)")
async def collect_garbage(node: NodeDep) -> Collected:
    report = await node.memory.collect_garbage()
    return Collected(expired=report.expired, tombstones=report.tombstones)


@router.post("/search", summary="Hybrid search (vector + BM25, fused)")
async def search(query: SearchQuery, node: NodeDep, principal: PrincipalDep) -> SearchResults:
    hits = await node.governor.run(
        principal,
        "memory_search",
        query.model_dump(mode="json"),
        lambda: node.memory.search(principal, query),
    )
    return SearchResults(hits=hits)


@router.get("", summary="List memories in write order")
async def list_memories(
    node: NodeDep,
    principal: PrincipalDep,
    zones: Annotated[list[Zone] | None, Query()] = None,
    kinds: Annotated[
        list[Annotated[str, StringConstraints(pattern=KIND_PATTERN.pattern)]] | None, Query()
    ] = None,
    tags: Annotated[
        list[Annotated[str, StringConstraints(pattern=TAG_PATTERN.pattern)]] | None, Query()
    ] = None,
    owner: str | None = None,
    thread_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    include_invalid: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
) -> Page:
    try:
        query = ListQuery(
            zones=zones,
            kinds=kinds,
            tags=tags,
            owner=owner,
            thread_id=thread_id,
            since=since,
            until=until,
            include_invalid=include_invalid,
            limit=limit,
            cursor=cursor,
        )
    except ValidationError as exc:  # the query parameters, checked by the domain model
        error = InvalidRequest(validation_message(exc.errors()))
        error.status = 422
        raise error from None
    return await node.governor.run(
        principal,
        "memory_list",
        query.model_dump(mode="json"),
        lambda: node.memory.list_memories(principal, query),
    )


@router.get("/{memory_id}", summary="Get one memory")
async def get(memory_id: str, node: NodeDep, principal: PrincipalDep) -> Memory:
    return await node.governor.run(
        principal, "memory_get", {"id": memory_id}, lambda: node.memory.get(principal, memory_id)
    )


class Update(BaseModel):
    content: str = Field(min_length=1, description="The new version's content; everything else is kept.")


class History(BaseModel):
    versions: list[Memory]


@router.post(
    "/{memory_id}/versions", status_code=201, summary="Update a memory: a new version that supersedes it"
)
async def update(memory_id: str, body: Update, node: NodeDep, principal: PrincipalDep) -> Memory:
    args = {"id": memory_id, "content": body.content}
    return await node.governor.run(
        principal, "memory_update", args, lambda: node.memory.update(principal, memory_id, body.content)
    )


@router.get("/{memory_id}/history", summary="Every version of a memory, oldest first")
async def history(memory_id: str, node: NodeDep, principal: PrincipalDep) -> History:
    versions = await node.governor.run(
        principal, "memory_history", {"id": memory_id}, lambda: node.memory.history(principal, memory_id)
    )
    return History(versions=versions)


@router.delete("/{memory_id}", status_code=204, summary="Forget a memory for good")
async def forget(memory_id: str, node: NodeDep, principal: PrincipalDep) -> None:
    await node.governor.run(
        principal, "memory_forget", {"id": memory_id}, lambda: node.memory.forget(principal, memory_id)
    )


@router.delete("", summary="Forget every memory of an owner (GDPR erasure)")
async def forget_owner(owner: str, node: NodeDep, principal: PrincipalDep) -> Forgotten:
    deleted = await node.governor.run(
        principal, "memory_forget_owner", {"owner": owner}, lambda: node.memory.forget_owner(principal, owner)
    )
    return Forgotten(deleted=deleted)
