"""An agent as a signed package, to move it to another node (``noosphere agent export`` and
``import``): its profile (level, capabilities, model, system prompt, tools, zones, rules, plan,
budgets) and its most important memories, signed with the exporting node's key.

The file is ``{"package": {...}, "signature": "..."}``. The signature covers the package as JSON
with sorted keys, so it checks whatever version of noosphere reads it; the package is read into
the current models only once the signature holds. A node id derives from its key, so the package
names who signed it (``node``) and carries the key that proves it.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from noosphere.agents.profile import AgentProfile
from noosphere.errors import InvalidRequest
from noosphere.identity import NodeKey, node_id_of, public_key_from_text, verify
from noosphere.memory.model import (
    THREAD_ID_MAX,
    Memory,
    MemoryDraft,
    MetadataValue,
    Text,
    When,
    Zone,
    check_kind,
    check_tags,
)

FORMAT = "noosphere-agent/1"
DOMAIN = b"noosphere-agent-package-v1\n"
MAX_MEMORIES = 10_000


class PackedMemory(BaseModel):
    """One of the agent's memories, as a draft to store again under its name."""

    model_config = ConfigDict(extra="forbid")

    content: Text = Field(min_length=1, max_length=1_000_000)
    zone: Zone
    kind: str
    tags: list[str] = Field(default_factory=list, max_length=32)
    metadata: dict[str, MetadataValue] = Field(default_factory=dict, max_length=64)
    importance: float = Field(0.5, ge=0.0, le=1.0)
    valid_at: When | None = None
    thread_id: Text | None = Field(None, max_length=THREAD_ID_MAX)

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        return check_kind(value)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        return check_tags(value)

    @classmethod
    def of(cls, memory: Memory) -> PackedMemory:
        return cls(
            content=memory.content,
            zone=memory.zone,
            kind=memory.kind,
            tags=memory.tags,
            metadata=memory.metadata,
            importance=memory.importance,
            valid_at=memory.valid_at,
            thread_id=memory.thread_id,
        )

    def draft(self) -> MemoryDraft:
        return MemoryDraft.model_validate(self.model_dump())


class AgentPackage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["noosphere-agent/1"]
    exported_at: datetime
    node: str = Field(max_length=64, description="The id of the node that signed it.")
    public_key: str = Field(max_length=64)
    profile: AgentProfile
    memories: list[PackedMemory] = Field(max_length=MAX_MEMORIES)


def _signed_text(package: dict[str, Any]) -> bytes:
    return DOMAIN + orjson.dumps(package, option=orjson.OPT_SORT_KEYS)


def pack(key: NodeKey, profile: AgentProfile, memories: list[Memory]) -> bytes:
    """The signed package file."""
    package = AgentPackage(
        format=FORMAT,
        exported_at=datetime.now(UTC),
        node=key.id,
        public_key=key.public_text,
        profile=profile,
        memories=[PackedMemory.of(m) for m in memories],
    ).model_dump(mode="json")
    signature = base64.b64encode(key.sign(_signed_text(package))).decode()
    return orjson.dumps({"package": package, "signature": signature}, option=orjson.OPT_INDENT_2)


def unpack(data: bytes) -> AgentPackage:
    """The package, once its signature checks (``InvalidRequest`` otherwise, or if malformed)."""
    try:
        outer = orjson.loads(data)
        package, signature = outer["package"], base64.b64decode(outer["signature"], validate=True)
        public = public_key_from_text(package["public_key"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise InvalidRequest(f"not an agent package: {exc}") from None
    if node_id_of(public) != package.get("node"):
        raise InvalidRequest("the package's key does not belong to the node it names")
    if not verify(public, signature, _signed_text(package)):
        raise InvalidRequest("the package's signature does not check: it was changed after export")
    try:
        return AgentPackage.model_validate(package)
    except ValidationError as exc:
        raise InvalidRequest(f"the package is signed but malformed: {exc.errors()[:1]}") from None


__all__ = ["FORMAT", "AgentPackage", "PackedMemory", "pack", "unpack"]
