"""SHA-256 of a value as canonical JSON (sorted keys, no spaces, UTF-8): what the audit log keeps
in place of message payloads, tool arguments and tool results, and what an approval pins."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson


def sha256_json(value: Any) -> str:
    """Hex SHA-256 of ``value`` as canonical JSON; values JSON has no type for count as text."""
    text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str)
    return hashlib.sha256(text).hexdigest()


__all__ = ["sha256_json"]
