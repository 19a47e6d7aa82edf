"""SQL text and row mapping for the SQLite backend: the filter builder (visibility, liveness,
filters — every value a parameter), row → domain conversions, and the migration splitter."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from typing import Any

from noosphere.memory.model import Filters, Memory, Zone
from noosphere.store import conditions
from noosphere.store.conditions import Condition, Dialect
from noosphere.store.contract import PrincipalRecord, Viewer

COLUMNS = (
    "id, seq, zone, owner, kind, content, tags, metadata, content_hash, importance, created_at, "
    "valid_at, invalid_at, expires_at, supersedes, thread_id, embed_model, encrypted, hlc, origin, "
    "tombstone"
)
INDEX_COLUMNS = "rowid, id, embedding, zone, owner, kind, valid_at, expires_at, invalid_at, tombstone, seq"


def ts(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def memory_of(row: sqlite3.Row) -> Memory:
    return Memory(
        id=row["id"],
        seq=row["seq"],
        zone=Zone(row["zone"]),
        owner=row["owner"],
        kind=row["kind"],
        content=row["content"],
        tags=json.loads(row["tags"]),
        metadata=json.loads(row["metadata"]),
        content_hash=row["content_hash"],
        importance=row["importance"],
        created_at=dt(row["created_at"]),
        valid_at=dt(row["valid_at"]),
        invalid_at=dt(row["invalid_at"]),
        expires_at=dt(row["expires_at"]),
        supersedes=row["supersedes"],
        thread_id=row["thread_id"],
        embed_model=row["embed_model"],
        encrypted=bool(row["encrypted"]),
        hlc=row["hlc"],
        origin=row["origin"],
        tombstone=bool(row["tombstone"]),
    )


def principal_of(row: sqlite3.Row) -> PrincipalRecord:
    return PrincipalRecord(
        id=row["id"],
        kind=row["kind"],
        name=row["name"],
        level=row["level"],
        token_hash=row["token_hash"],
        key_salt=bytes(row["key_salt"]),
        created_at=datetime.fromtimestamp(row["created_at"], UTC),
        disabled=bool(row["disabled"]),
        capture=bool(row["capture"]),
        models=None if row["models"] is None else tuple(json.loads(row["models"])),
    )


def _one_of(column: str, values: list[Any]) -> Condition:
    return f"{column} IN ({','.join('?' * len(values))})", values


def _has_tags(column: str, tags: list[str]) -> Condition:
    each = f"EXISTS (SELECT 1 FROM json_each({column}) WHERE json_each.value = ?)"
    return " AND ".join([each] * len(tags)), list(tags)


def _metadata_is(column: str, key: str, value: Any) -> Condition:
    return f"json_extract({column}, ?) IS ?", [f'$."{key}"', int(value) if isinstance(value, bool) else value]


DIALECT = Dialect(
    mark="?",
    is_false=lambda column: f"{column} = 0",
    time=lambda value: value.timestamp(),
    one_of=_one_of,
    has_tags=_has_tags,
    metadata_is=_metadata_is,
)


def where(viewer: Viewer, filters: Filters, now: datetime, alias: str = "m") -> Condition:
    """SQL conditions (all parameterised) for visibility, liveness and ``filters``."""
    return conditions.where(DIALECT, viewer, filters, now, alias)


def needs_sql_prefilter(filters: Filters) -> bool:
    return bool(filters.tags or filters.metadata or filters.thread_id)


def split_sql(script: str) -> list[str]:
    """Split a migration into statements, keeping trigger bodies (BEGIN … END;) whole."""
    statements: list[str] = []
    current: list[str] = []
    for line in script.splitlines():
        if line.strip().startswith("--") and not current:
            continue
        current.append(line)
        candidate = "\n".join(current).strip()
        if candidate.endswith(";") and sqlite3.complete_statement(candidate):
            statements.append(candidate)
            current = []
    if "\n".join(current).strip():
        statements.append("\n".join(current).strip())
    return statements
