"""Who wrote a federated record: every record travels with its origin node's seal (the origin's
public key and its signature, ``KEY.SIGNATURE`` in base64), so any node can check it, whichever
peer passed it on. A peer can therefore relay
other nodes' records but never forge one, nor delete one: a tombstone is signed by the record's
origin too. Ids derive from keys (``node_id_of``), so a record's key proves its ``origin``.

The signed text is a canonical form of the record that survives both stores unchanged: times as
whole microseconds, importance to four decimals (PostgreSQL keeps it as a 4-byte float), and
metadata with sorted keys and whole floats as integers (jsonb may give back either).
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from noosphere.expiring import Expiring
from noosphere.identity import NodeKey, node_id_of, public_key_from_text, verify
from noosphere.memory.model import Memory

DOMAIN = b"noosphere-record-v1\n"
SEALS_KEPT_FOR = 3600.0  # seconds a seal of this node's own record is remembered
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(value: datetime | None) -> int | None:
    return None if value is None else (value - _EPOCH) // timedelta(microseconds=1)


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def canonical(memory: Memory) -> bytes:
    """What the origin signs. A tombstone is signed as what is left of it: which record, when it
    was erased (its clock and time), and what it superseded."""
    fields: dict[str, Any] = {
        "id": memory.id,
        "origin": memory.origin,
        "hlc": memory.hlc,
        "tombstone": memory.tombstone,
        "supersedes": memory.supersedes,
        "zone": memory.zone.value,
    }
    if memory.tombstone:
        fields["erased_at"] = _micros(memory.invalid_at)
    else:
        fields |= {
            "owner": memory.owner,
            "kind": memory.kind,
            "content": memory.content,
            "tags": memory.tags,
            "metadata": _plain(memory.metadata),
            "content_hash": memory.content_hash,
            "importance": round(memory.importance * 10_000),
            "created_at": _micros(memory.created_at),
            "valid_at": _micros(memory.valid_at),
            "expires_at": _micros(memory.expires_at),
            "thread_id": memory.thread_id,
        }
    return DOMAIN + orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)


def seal(key: NodeKey, memory: Memory) -> str:
    """The origin's seal of one of its records, as it travels and is stored."""
    return _sealed(key, canonical(memory))


def _sealed(key: NodeKey, text: bytes) -> str:
    return f"{key.public_text}.{base64.b64encode(key.sign(text)).decode()}"


class Sealer:
    """Seals this node's own records as they go out, remembering the latest ones: every peer
    pulls the same pages, and Ed25519 signatures are deterministic, so a record that has not
    changed is signed once, not once per peer and pull."""

    def __init__(self, key: NodeKey, limit: int = 100_000) -> None:
        self.key = key
        self._seals: Expiring[bytes, str] = Expiring(SEALS_KEPT_FOR, limit=limit)

    def seal(self, memory: Memory) -> str:
        text = canonical(memory)
        digest = hashlib.blake2b(text, digest_size=16).digest()
        found = self._seals.get(digest)
        if found is None:
            found = _sealed(self.key, text)
            self._seals.put(digest, found)
        return found


class KeyRing:
    """Origins' public keys, parsed once each; a key is taken only if it is the origin's (its id
    derives from it)."""

    def __init__(self, limit: int = 4096) -> None:
        self._keys: dict[tuple[str, str], Ed25519PublicKey | None] = {}
        self._limit = limit

    def key_of(self, origin: str, key_text: str) -> Ed25519PublicKey | None:
        pair = (origin, key_text)
        if pair not in self._keys:
            if len(self._keys) >= self._limit:  # a peer making up origins cannot grow this without end
                self._keys.clear()
            try:
                public: Ed25519PublicKey | None = public_key_from_text(key_text)
            except ValueError:
                public = None
            self._keys[pair] = public if public is not None and node_id_of(public) == origin else None
        return self._keys[pair]

    def verified(self, memory: Memory, sealed: str | None) -> bool:
        """Whether ``memory`` is exactly as its origin sealed it."""
        key_text, _, signature = (sealed or "").partition(".")
        if not key_text or not signature:
            return False
        public = self.key_of(memory.origin, key_text)
        if public is None:
            return False
        try:
            raw = base64.b64decode(signature, validate=True)
        except ValueError:
            return False
        return len(raw) == 64 and verify(public, raw, canonical(memory))


__all__ = ["KeyRing", "Sealer", "canonical", "seal"]
