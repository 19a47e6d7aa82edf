"""The SQL conditions every memory read goes through: visibility, liveness and the caller's
filters, written once for both backends. Each backend supplies its ``Dialect`` (placeholders, how
it stores time, lists, tags and JSON); the rule itself lives only here, and every value is a
parameter. ``Viewer.sees`` says the same in Python, and the contract suite checks both agree."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from noosphere.memory.model import Filters
from noosphere.store.contract import Viewer

Condition = tuple[str, list[Any]]  # SQL text with placeholders, and their values


@dataclass(frozen=True)
class Dialect:
    mark: str  # the parameter placeholder
    is_false: Callable[[str], str]  # a boolean column is false
    time: Callable[[datetime], Any]  # a time as the backend stores it
    one_of: Callable[[str, list[Any]], Condition]  # a column holds one of the values
    has_tags: Callable[[str, list[str]], Condition]  # a tag list holds every tag
    metadata_is: Callable[[str, str, Any], Condition]  # a JSON object's key holds the value


def where(dialect: Dialect, viewer: Viewer, filters: Filters, now: datetime, alias: str = "m") -> Condition:
    """The conditions, each in its own parentheses, so an OR inside one can never escape the
    visibility rule."""
    a, p = alias, dialect.mark
    conditions: list[Condition] = [
        (dialect.is_false(f"{a}.tombstone"), []),
        (f"{a}.expires_at IS NULL OR {a}.expires_at > {p}", [dialect.time(now)]),
    ]
    if not filters.include_invalid:
        conditions.append((f"{a}.invalid_at IS NULL", []))
    if viewer.principal_id is not None:  # private memories only to their owner
        conditions.append((f"{a}.zone <> 'private' OR {a}.owner = {p}", [viewer.principal_id]))
    if filters.zones is not None:
        conditions.append(dialect.one_of(f"{a}.zone", [z.value for z in filters.zones]))
    if filters.kinds is not None:
        conditions.append(dialect.one_of(f"{a}.kind", list(filters.kinds)))
    if filters.owner is not None:
        conditions.append((f"{a}.owner = {p}", [filters.owner]))
    if filters.since is not None:
        conditions.append((f"{a}.valid_at >= {p}", [dialect.time(filters.since)]))
    if filters.until is not None:
        conditions.append((f"{a}.valid_at < {p}", [dialect.time(filters.until)]))
    if filters.thread_id is not None:
        conditions.append((f"{a}.thread_id = {p}", [filters.thread_id]))
    if filters.tags:
        conditions.append(dialect.has_tags(f"{a}.tags", list(filters.tags)))
    for key, value in (filters.metadata or {}).items():
        # The key is pattern-checked by ``Filters`` and passed as a parameter, never spliced in.
        conditions.append(dialect.metadata_is(f"{a}.metadata", key, value))
    return " AND ".join(f"({text})" for text, _ in conditions), [
        v for _, values in conditions for v in values
    ]
