"""SHA-256 of a value as canonical JSON (sorted keys, no spaces, UTF-8): what the audit log keeps
in place of message payloads, tool arguments and tool results, and what an approval pins."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson


def _canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str)


def canonical_json(value: Any) -> str:
    """``value`` as the canonical JSON text its digest is taken over."""
    return _canonical(value).decode()


def sha256_json(value: Any) -> str:
    """Hex SHA-256 of ``value`` as canonical JSON; values JSON has no type for count as text."""
    return hashlib.sha256(_canonical(value)).hexdigest()


__all__ = ["canonical_json", "sha256_json"]
