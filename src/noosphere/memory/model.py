"""Memory domain types: what callers write (``MemoryDraft``), what the store keeps (``Memory``),
how they ask (``SearchQuery``, ``ListQuery``) and what they get back (``SearchHit``, ``Page``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic.config import JsonDict

KIND_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
THREAD_ID_MAX = 128  # characters of a thread (conversation, session) id
TAG_PATTERN = re.compile(r"^[\w:./@#+-]{1,64}$")
METADATA_KEY_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Times a caller may give: wide enough for any real use, narrow enough that the node's own date
# arithmetic (retention, grace periods) never leaves what every backend can represent.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
INT64_MAX = 2**63 - 1


def _storable_text(value: str) -> str:
    """Text every backend stores as given: UTF-8 encodable (no lone surrogates), no NUL."""
    if "\x00" in value:
        raise ValueError("text may not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode (it holds a lone surrogate)") from None
    return value


def _storable_time(value: datetime) -> datetime:
    moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if not EARLIEST <= moment < LATEST:
        raise ValueError(f"times must lie between {EARLIEST.year} and {LATEST.year}")
    return value


# The same rules as JSON Schema patterns, so OpenAPI and MCP clients see them before they call.
TEXT_SCHEMA_PATTERN = r"^[^\x00\ud800-\udfff]*$"
# Years 1901 to 8998: inside the range the check takes whatever the time zone offset.
WHEN_SCHEMA_PATTERN = r"^(190[1-9]|19[1-9][0-9]|[2-7][0-9]{3}|8[0-8][0-9]{2}|89[0-8][0-9]|899[0-8])-"
Text = Annotated[
    str, AfterValidator(_storable_text), Field(json_schema_extra={"pattern": TEXT_SCHEMA_PATTERN})
]
When = Annotated[
    datetime, AfterValidator(_storable_time), Field(json_schema_extra={"pattern": WHEN_SCHEMA_PATTERN})
]
MetadataValue = (
    Text
    | Annotated[int, Field(ge=-INT64_MAX - 1, le=INT64_MAX)]
    | Annotated[float, Field(allow_inf_nan=False)]
    | bool
    | None
)


class Zone(StrEnum):
    PRIVATE = "private"  # the owner only; never leaves the node
    SHARED = "shared"  # every principal of this node
    FEDERATED = "federated"  # shared, and replicated to peer nodes (tier L4)


class Tier(StrEnum):
    L1 = "L1"  # raw message log with a TTL
    L2 = "L2"  # conversations, encrypted with a key only the owner can derive
    L3 = "L3"  # semantic memories
    L4 = "L4"  # the federated zone


MESSAGE_KIND = "message"
CONVERSATION_KIND = "conversation"


def tier_of(kind: str, zone: Zone) -> Tier:
    if zone is Zone.FEDERATED:
        return Tier.L4
    if kind == MESSAGE_KIND:
        return Tier.L1
    if kind == CONVERSATION_KIND:
        return Tier.L2
    return Tier.L3


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# The checks below give their own messages; these put the same rules into the JSON schemas
# (OpenAPI, MCP tool inputs) so clients can see them before they call.
_KIND_SCHEMA: JsonDict = {"pattern": KIND_PATTERN.pattern}
_TAGS_SCHEMA: JsonDict = {"items": {"type": "string", "pattern": TAG_PATTERN.pattern}}
_METADATA_SCHEMA: JsonDict = {"propertyNames": {"pattern": METADATA_KEY_PATTERN.pattern}}


def check_kind(kind: str) -> str:
    if not KIND_PATTERN.match(kind):
        raise ValueError("kind must be 1-32 lowercase letters, digits, '-' or '_'")
    return kind


def check_metadata_keys(metadata: dict[str, Any]) -> dict[str, Any]:
    for key in metadata:
        if not METADATA_KEY_PATTERN.match(key):
            raise ValueError(f"metadata key {key!r} must be 1-64 letters, digits, '-' or '_'")
    return metadata


def check_tags(tags: list[str]) -> list[str]:
    for tag in tags:
        if not TAG_PATTERN.match(tag):
            raise ValueError(f"tag {tag!r} must be 1-64 letters, digits or :./@#+-_")
    return sorted(set(tags))


class MemoryDraft(_Model):
    """A memory as a caller writes it. The owner is never part of it: it is the caller."""

    content: Text = Field(
        description="The text to remember.",
        json_schema_extra={"pattern": r"^[^\x00\ud800-\udfff]*\S[^\x00\ud800-\udfff]*$"},  # not blank
    )
    zone: Zone = Field(Zone.PRIVATE, description="private | shared | federated")
    kind: str = Field(
        "fact",
        description="fact, decision, pattern, error, observation, message, …",
        json_schema_extra=_KIND_SCHEMA,
    )
    tags: list[str] = Field(default_factory=list, max_length=32, json_schema_extra=_TAGS_SCHEMA)
    metadata: dict[str, MetadataValue] = Field(default_factory=dict, json_schema_extra=_METADATA_SCHEMA)
    importance: float = Field(0.5, ge=0.0, le=1.0)
    valid_at: When | None = Field(None, description="When the memory became true (default now).")
    expires_at: When | None = Field(None, description="Forget automatically after this time.")
    supersedes: Text | None = Field(None, max_length=64, description="Id of a memory this one replaces.")
    thread_id: Text | None = Field(
        None, max_length=THREAD_ID_MAX, description="Conversation or session the memory belongs to."
    )

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


class Memory(_Model):
    """A stored memory, as the store keeps it (content already decrypted for its owner)."""

    id: str
    seq: int
    zone: Zone
    owner: str
    kind: str
    content: str
    tags: list[str]
    metadata: dict[str, Any]
    content_hash: str
    importance: float
    created_at: datetime
    valid_at: datetime
    invalid_at: datetime | None = None
    expires_at: datetime | None = None
    supersedes: str | None = None
    thread_id: str | None = None
    embed_model: str | None = None
    encrypted: bool = False
    hlc: int
    origin: str
    tombstone: bool = False

    @property
    def tier(self) -> Tier:
        return tier_of(self.kind, self.zone)

    def compact(self) -> dict[str, Any]:
        """What a language model needs of a memory, and no more: hashes, clocks, sequence
        numbers and flags cost such a caller tokens for nothing (MCP answers this unless asked
        for ``verbose``). Empty fields are left out; ``superseded`` marks an older version."""
        out: dict[str, Any] = {"id": self.id, "content": self.content, "kind": self.kind}
        if self.tags:
            out["tags"] = self.tags
        if self.thread_id:
            out["thread"] = self.thread_id
        out["date"] = self.valid_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
        if self.invalid_at is not None:
            out["superseded"] = True
        return out


class Filters(_Model):
    """Narrowing filters shared by search and list. All given filters must hold (AND)."""

    zones: list[Zone] | None = None
    kinds: list[Annotated[Text, Field(max_length=32)]] | None = None
    tags: list[str] | None = Field(
        None, description="The memory carries every one of these tags.", json_schema_extra=_TAGS_SCHEMA
    )
    owner: Text | None = Field(
        None, max_length=200, description="Only memories of this owner (within your view)."
    )
    since: When | None = None
    until: When | None = None
    metadata: dict[str, MetadataValue] | None = Field(
        None, description="Metadata keys that must equal these values.", json_schema_extra=_METADATA_SCHEMA
    )
    thread_id: Text | None = Field(None, max_length=THREAD_ID_MAX)
    include_invalid: bool = Field(False, description="Also return superseded memories.")

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else check_tags(value)

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, MetadataValue] | None) -> dict[str, MetadataValue] | None:
        for key in value or {}:
            if not METADATA_KEY_PATTERN.match(key):
                raise ValueError(f"metadata key {key!r} must be 1-64 letters, digits, '-' or '_'")
        return value


class SearchQuery(Filters):
    query: Text = Field(min_length=1, max_length=4000)
    limit: int = Field(10, ge=1, le=100)
    include_federation: bool = Field(
        False,
        description="Also ask the live federated peers (their federated memories), within "
        "federation.search_timeout_seconds; hits are fused by rank, deduplicated by content, and "
        "each says which node it came from (source).",
    )


class ListQuery(Filters):
    limit: int = Field(50, ge=1, le=1000)
    cursor: int | None = Field(None, ge=0, le=INT64_MAX, description="Continue after this sequence number.")


class SearchHit(_Model):
    memory: Memory
    score: float
    source: str | None = Field(
        None, description="The node this hit came from (searches with include_federation)."
    )

    def compact(self) -> dict[str, Any]:
        """``Memory.compact`` with the score, and the node it came from if another."""
        out = {**self.memory.compact(), "score": round(self.score, 4)}
        if self.source:
            out["source"] = self.source
        return out


class Page(_Model):
    items: list[Memory]
    next_cursor: int | None
