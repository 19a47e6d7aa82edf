"""SQL text and row mapping for the PostgreSQL backend: the filter builder (visibility, liveness,
filters — every value a parameter) and row → domain conversions."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import numpy as np
from psycopg.types.json import Jsonb

from noosphere.memory.model import Filters, Memory, Zone
from noosphere.store import conditions
from noosphere.store.conditions import Condition, Dialect
from noosphere.store.contract import (
    PrincipalRecord,
    Vector,
    Viewer,
)

Row = dict[str, Any]


COLUMNS = (
    "id, seq, zone, owner, kind, content, tags, metadata, content_hash, importance, created_at, "
    "valid_at, invalid_at, expires_at, supersedes, thread_id, embed_model, encrypted, hlc, origin, "
    "tombstone"
)


def memory_of(row: Row) -> Memory:
    return Memory(
        id=row["id"],
        seq=row["seq"],
        zone=Zone(row["zone"]),
        owner=row["owner"],
        kind=row["kind"],
        content=row["content"],
        tags=list(row["tags"]),
        metadata=row["metadata"],
        content_hash=row["content_hash"],
        importance=row["importance"],
        created_at=row["created_at"],
        valid_at=row["valid_at"],
        invalid_at=row["invalid_at"],
        expires_at=row["expires_at"],
        supersedes=row["supersedes"],
        thread_id=row["thread_id"],
        embed_model=row["embed_model"],
        encrypted=row["encrypted"],
        hlc=row["hlc"],
        origin=row["origin"],
        tombstone=row["tombstone"],
    )


def principal_of(row: Row) -> PrincipalRecord:
    return PrincipalRecord(
        id=row["id"],
        kind=row["kind"],
        name=row["name"],
        level=row["level"],
        token_hash=row["token_hash"],
        key_salt=bytes(row["key_salt"]),
        created_at=row["created_at"],
        disabled=row["disabled"],
        capture=row["capture"],
        models=None if row["models"] is None else tuple(row["models"]),
    )


def vector_literal(vector: Vector) -> str:
    return "[" + ",".join(f"{x:.8g}" for x in vector.tolist()) + "]"


def parse_vector(text: str | None) -> Vector | None:
    if text is None:
        return None
    return np.asarray(json.loads(text), dtype=np.float32)


def dedup_key(memory: Memory) -> str:
    return f"{memory.owner}|{memory.zone.value}|{memory.content_hash}"


def lexeme(term: str) -> str:
    """A tsquery lexeme literal: quoted, inner quotes and backslashes escaped, no operators."""
    return "'" + term.replace("\\", "\\\\").replace("'", "''") + "'"


def _metadata_is(column: str, key: str, value: Any) -> Condition:
    if value is None:  # absent, or JSON null
        return f"{column} -> %s IS NULL OR {column} -> %s = 'null'::jsonb", [key, key]
    return f"{column} @> %s", [Jsonb({key: value})]


DIALECT = Dialect(
    mark="%s",
    is_false=lambda column: f"NOT {column}",
    time=lambda value: value,
    one_of=lambda column, values: (f"{column} = ANY(%s)", [values]),
    has_tags=lambda column, tags: (f"{column} @> %s::text[]", [tags]),
    metadata_is=_metadata_is,
)


def where(viewer: Viewer, filters: Filters, now: datetime) -> Condition:
    """SQL conditions (all parameterised) for visibility, liveness and ``filters``."""
    return conditions.where(DIALECT, viewer, filters, now)
