"""An agent as a signed package, to move it to another node (``noosphere agent export`` and
``import``, through ``export_agent`` and ``import_agent``): its profile (level, capabilities,
model, system prompt, tools, zones, rules, plan, budgets) and its most important memories,
signed with the exporting node's key.

The file is ``{"package": {...}, "signature": "..."}``. The signature covers the package as JSON
with sorted keys, so it checks whatever version of noosphere reads it; the package is read into
the current models only once the signature holds. A node id derives from its key, so the package
names who signed it (``node``) and carries the key that proves it.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from noosphere.agents.profile import AgentProfile
from noosphere.auth.principal import Principal, PrincipalKind, principal_id
from noosphere.errors import InvalidRequest, NoosphereError
from noosphere.federation.service import effective_peers
from noosphere.identity import NodeKey, node_id_of, public_key_from_text, verify
from noosphere.memory.access import check_write
from noosphere.memory.model import (
    THREAD_ID_MAX,
    Filters,
    Memory,
    MemoryDraft,
    MetadataValue,
    Text,
    When,
    Zone,
    check_kind,
    check_tags,
)
from noosphere.store.contract import Viewer

if TYPE_CHECKING:
    from noosphere.node import Node

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


PAGE = 1000  # memories read at once while exporting


async def _own_memories(node: Node, owner: str) -> list[Memory]:
    """The owner's live memories that can travel (conversations are sealed for the owner's
    secret on this node, so they stay)."""
    out: list[Memory] = []
    after: int | None = None
    now = datetime.now(UTC)
    while True:
        page = await node.store.list_memories(Viewer(None), Filters(owner=owner), now, PAGE, after)
        out.extend(m for m in page if not m.encrypted)
        if len(page) < PAGE:
            return out
        after = page[-1].seq


async def export_agent(node: Node, name: str, memories: int, target: Path) -> int:
    """Write agent ``name`` to ``target`` (mode 0600: it holds private memories) as a package
    signed by ``node``, with its ``memories`` most important memories; how many it holds.
    Audited (``agent.exported``)."""
    profile = await node.agents.get(name)
    owned = await _own_memories(node, principal_id(PrincipalKind.AGENT, name))
    owned.sort(key=lambda m: (m.importance, m.valid_at), reverse=True)
    chosen = owned[:memories]
    data = pack(node.key, profile, chosen)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    await node.audit.append("admin", "agent.exported", {"agent": name, "memories": len(chosen)})
    return len(chosen)


@dataclass(frozen=True)
class Imported:
    name: str
    token: str  # the new agent's, shown once
    memories: int
    signer: str


async def import_agent(node: Node, package: AgentPackage, name: str | None, trust_any: bool) -> Imported:
    """Create the packaged agent (under ``name`` if given) with its memories, all or nothing.
    The signer must be ``node`` itself or one of its peers, unless ``trust_any``. Audited
    (``agent.imported``)."""
    peers = effective_peers(node.settings.federation, await node.store.stored_peers(), set())
    if package.node != node.key.id and package.node not in peers and not trust_any:
        raise InvalidRequest(
            f"the package is signed by {package.node}, which is not a peer of this node; "
            "add it with `noosphere peers add`, or pass --trust-any"
        )
    profile = package.profile.model_copy(update={"name": name}) if name else package.profile
    profile = type(profile).model_validate(profile.model_dump())  # the new name checked too
    would_be = Principal(
        principal_id(PrincipalKind.AGENT, profile.name), PrincipalKind.AGENT, profile.name, profile.level
    )
    for zone in {memory.zone for memory in package.memories}:
        check_write(would_be, zone)  # before anything is created
    _, secret = await node.agents.create(profile)
    agent = await node.authenticate(secret)
    drafts = [memory.draft() for memory in package.memories]
    batch = node.settings.memory.max_batch
    try:
        for start in range(0, len(drafts), batch):
            await node.memory.store_many(agent, drafts[start : start + batch])
    except NoosphereError:
        await node.remove(PrincipalKind.AGENT, profile.name)  # all or nothing
        raise
    body = {"agent": profile.name, "signer": package.node, "memories": len(drafts)}
    await node.audit.append("admin", "agent.imported", body)
    return Imported(profile.name, secret, len(drafts), package.node)


__all__ = [
    "FORMAT",
    "AgentPackage",
    "Imported",
    "PackedMemory",
    "export_agent",
    "import_agent",
    "pack",
    "unpack",
]
