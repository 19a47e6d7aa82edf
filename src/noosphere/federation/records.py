"""Federated memories on the wire between nodes: what a peer's change feed sends, checked as
strictly as a caller's own writes (a peer is another owner's machine, not a trusted part of this
one). Only plain federated records pass: the zone must be ``federated`` and nothing encrypted."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from noosphere.memory.model import (
    THREAD_ID_MAX,
    Memory,
    MetadataValue,
    Text,
    When,
    Zone,
    check_kind,
    check_metadata_keys,
    check_tags,
)
from noosphere.store.contract import Vector

INT64_MAX = (1 << 63) - 1
PAGE_MAX = 500  # records in one page of the feed
EMBEDDING_MAX = 4096  # dimensions
Finite = Annotated[float, Field(allow_inf_nan=False)]


class PeerRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Text = Field(min_length=1, max_length=64)
    seq: int = Field(ge=0, le=INT64_MAX)  # in the sending node's feed
    zone: Literal["federated"]
    owner: Text = Field(min_length=1, max_length=200)
    kind: str
    content: Text = Field(max_length=1_000_000)
    tags: list[str] = Field(max_length=32)
    metadata: dict[str, MetadataValue] = Field(max_length=64)
    content_hash: Text = Field(max_length=128)
    importance: float = Field(ge=0.0, le=1.0)
    created_at: When
    valid_at: When
    invalid_at: When | None = None
    expires_at: When | None = None
    supersedes: Text | None = Field(None, max_length=64)
    thread_id: Text | None = Field(None, max_length=THREAD_ID_MAX)
    embed_model: Text | None = Field(None, max_length=200)
    encrypted: Literal[False] = False
    hlc: int = Field(ge=0, le=INT64_MAX)
    origin: Text = Field(min_length=1, max_length=64)
    tombstone: bool = False
    embedding: list[Finite] | None = Field(None, max_length=EMBEDDING_MAX)

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        return check_kind(value)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        return check_tags(value)

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_metadata_keys(value)

    def pair(self) -> tuple[Memory, Vector | None]:
        fields = self.model_dump(exclude={"embedding"})
        memory = Memory.model_validate({**fields, "zone": Zone.FEDERATED})
        vector = None if self.embedding is None else np.asarray(self.embedding, dtype=np.float32)
        return memory, vector


def wire(memory: Memory, vector: Vector | None) -> dict[str, Any]:
    """A record of this node's feed as it is sent."""
    out: dict[str, Any] = memory.model_dump(mode="json")
    out["embedding"] = None if vector is None else [float(x) for x in vector]
    return out


class ChangesRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    after: int = Field(0, ge=0, le=INT64_MAX, description="The last sequence number already read.")
    limit: int = Field(200, ge=1, le=PAGE_MAX)


class ChangesPage(BaseModel):
    """A page of a peer's feed; its records are checked one by one (``PeerRecord``), so one bad
    record is skipped rather than blocking the feed."""

    model_config = ConfigDict(extra="forbid")

    records: list[dict[str, Any]] = Field(max_length=PAGE_MAX)
    last: int = Field(ge=0, le=INT64_MAX)  # the sequence number to ask after next time


__all__ = ["PAGE_MAX", "ChangesPage", "ChangesRequest", "PeerRecord", "wire"]
