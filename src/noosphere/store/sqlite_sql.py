"""SQL text and row mapping for the SQLite backend: the filter builder (visibility, liveness,
filters — every value a parameter), row → domain conversions, and the migration splitter."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from typing import Any

from noosphere.memory.model import Filters, Memory, Zone
from noosphere.store.contract import PrincipalRecord, Viewer

COLUMNS = (
    "id, seq, zone, owner, kind, content, tags, metadata, content_hash, importance, created_at, "
    "valid_at, invalid_at, expires_at, supersedes, thread_id, embed_model, encrypted, hlc, origin, "
    "tombstone"
)
INDEX_COLUMNS = "rowid, embedding, zone, owner, kind, valid_at, expires_at, invalid_at, tombstone, seq"


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


def where(viewer: Viewer, filters: Filters, now: datetime, alias: str = "m") -> tuple[str, list[Any]]:
    """SQL conditions (all parameterised) for visibility, liveness and ``filters``."""
    a = alias
    clauses = [f"{a}.tombstone = 0", f"({a}.expires_at IS NULL OR {a}.expires_at > ?)"]
    params: list[Any] = [now.timestamp()]
    if not filters.include_invalid:
        clauses.append(f"{a}.invalid_at IS NULL")
    if viewer.principal_id is not None:
        clauses.append(f"({a}.zone != 'private' OR {a}.owner = ?)")
        params.append(viewer.principal_id)
    if filters.zones is not None:
        clauses.append(f"{a}.zone IN ({','.join('?' * len(filters.zones))})")
        params.extend(z.value for z in filters.zones)
    if filters.kinds is not None:
        clauses.append(f"{a}.kind IN ({','.join('?' * len(filters.kinds))})")
        params.extend(filters.kinds)
    if filters.owner is not None:
        clauses.append(f"{a}.owner = ?")
        params.append(filters.owner)
    if filters.since is not None:
        clauses.append(f"{a}.valid_at >= ?")
        params.append(filters.since.timestamp())
    if filters.until is not None:
        clauses.append(f"{a}.valid_at < ?")
        params.append(filters.until.timestamp())
    if filters.thread_id is not None:
        clauses.append(f"{a}.thread_id = ?")
        params.append(filters.thread_id)
    for tag in filters.tags or []:
        clauses.append(f"EXISTS (SELECT 1 FROM json_each({a}.tags) WHERE json_each.value = ?)")
        params.append(tag)
    for key, value in (filters.metadata or {}).items():
        # The key is pattern-checked and passed as a parameter, never spliced into the SQL.
        clauses.append(f"json_extract({a}.metadata, ?) IS ?")
        params.append(f'$."{key}"')
        params.append(int(value) if isinstance(value, bool) else value)
    # Each condition in its own parentheses: an OR inside one can never escape the visibility rule.
    return " AND ".join(f"({c})" for c in clauses), params


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
