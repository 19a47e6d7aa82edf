"""Federated memories on the wire between nodes: what a peer's change feed sends, checked as
strictly as a caller's own writes (a peer is another owner's machine, not a trusted part of this
one). Only plain federated records pass: the zone must be ``federated`` and nothing encrypted."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from noosphere.auth.principal import Level
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
from noosphere.store.contract import Replica

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
    seal: Text | None = Field(None, max_length=200)  # the origin's key and signature

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

    def replica(self) -> Replica:
        fields = self.model_dump(exclude={"embedding", "seal"})
        memory = Memory.model_validate({**fields, "zone": Zone.FEDERATED})
        vector = None if self.embedding is None else np.asarray(self.embedding, dtype=np.float32)
        return Replica(memory, vector, self.seal)


def wire(replica: Replica) -> dict[str, Any]:
    """A record as it is sent (its seal already set)."""
    out: dict[str, Any] = replica.memory.model_dump(mode="json")
    vector = replica.vector
    out["embedding"] = None if vector is None else [float(x) for x in vector]
    out["seal"] = replica.seal
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
    # The last purged tombstone's sequence number: a reader whose cursor is below it missed
    # deletions and resynchronises.
    horizon: int = Field(0, ge=0, le=INT64_MAX)


class ModelCapacity(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: Text = Field(max_length=200)
    free: int = Field(ge=0, le=1_000_000)  # slots free now
    slots: int = Field(ge=0, le=1_000_000)
    context_length: int = Field(4096, ge=1, le=100_000_000)


class AgentCapacity(BaseModel):
    """An agent a node serves, offered to a peer that may give it tasks."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
    level: Level
    free: int = Field(ge=0, le=1_000_000)  # tasks the peer may give this node's agents now


class Hello(BaseModel):
    """What a node says of itself in a heartbeat, both ways: who it is, and what it can take on
    for its peers. Unknown fields are ignored, so nodes of other versions can still talk."""

    model_config = ConfigDict(extra="ignore")

    id: Text = Field(max_length=64)
    name: Text = Field(max_length=64)
    version: Text = Field(max_length=64)
    time: Finite
    load: Finite = Field(0.0, ge=0)  # requests waiting per slot
    models: list[ModelCapacity] = Field(default_factory=list, max_length=256)
    agents: list[AgentCapacity] = Field(default_factory=list, max_length=256)
    zones: list[Annotated[Text, Field(max_length=16)]] = Field(default_factory=list, max_length=8)


MESSAGE_MAX = 1 << 20  # bytes of one reconciliation message (base64 makes it a third longer)


TRADE_MAX = 100  # records traded with one reconciliation message, each way
MORE_MAX = 100_000  # items to fetch one repair learns of; the rest wait for the next repair
ItemHex = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]


class ReconcileRequest(BaseModel):
    """One message of a reconciliation the caller leads; the node answers statelessly. With it
    come records the caller found the node lacks (``sync.py``)."""

    model_config = ConfigDict(extra="forbid")

    since: int = Field(0, ge=0, le=INT64_MAX, description="Only records stamped this late or later.")
    message: str = Field(max_length=MESSAGE_MAX * 4 // 3 + 4, description="base64")
    complete: bool = Field(False, description="Tell the caller the whole difference (a full resync).")
    records: list[dict[str, Any]] = Field(default_factory=list, max_length=TRADE_MAX)


class ReconcileAnswer(BaseModel):
    """The node's answer, with the records it found the caller lacks (up to ``TRADE_MAX``; the
    items of the rest in ``more``, for the caller to fetch)."""

    model_config = ConfigDict(extra="forbid")

    message: str | None = Field(None, max_length=MESSAGE_MAX * 4 // 3 + 4)  # None: nothing left
    records: list[dict[str, Any]] = Field(default_factory=list, max_length=TRADE_MAX)
    more: list[ItemHex] = Field(default_factory=list, max_length=MORE_MAX)


class RecordsRequest(BaseModel):
    """Records by reconciliation item (32 hex digits each), as found missing."""

    model_config = ConfigDict(extra="forbid")

    items: list[ItemHex] = Field(max_length=PAGE_MAX)


class RecordsPage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    records: list[dict[str, Any]] = Field(max_length=PAGE_MAX)


__all__ = [
    "PAGE_MAX",
    "ChangesPage",
    "ChangesRequest",
    "Hello",
    "ModelCapacity",
    "PeerRecord",
    "ReconcileAnswer",
    "ReconcileRequest",
    "RecordsPage",
    "RecordsRequest",
    "wire",
]
