"""The key that seals a person's conversations (L2 memories), from a secret only they hold.

The secret comes with each request that needs it (the ``X-Noosphere-Secret`` header; the
``NOOSPHERE_SECRET`` environment variable for the CLI and the stdio MCP server) and is never
stored: the node keeps a random salt per principal and a check value that tells a wrong secret from
the right one. Tokens play no part, so the admin, who mints and rotates tokens, cannot derive the
key, and a token rotation or a new API key leaves a person's conversations readable to them.

Derived keys are kept in this process's memory for ``auth.cache_seconds`` (scrypt costs tens of
milliseconds); they are never written anywhere.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import replace
from datetime import UTC, datetime

import anyio.to_thread

from noosphere.auth.names import SECRET_ENV, SECRET_HEADER
from noosphere.auth.principal import Principal
from noosphere.errors import InvalidRequest, WrongSecret
from noosphere.expiring import Expiring
from noosphere.memory import crypto
from noosphere.store.contract import MemoryStore

MIN_SECRET_CHARS = 16
MAX_SECRET_CHARS = 1024
KDF_AT_ONCE = 2


class ConversationKeys:
    def __init__(self, store: MemoryStore, cache_seconds: float) -> None:
        self._store = store
        self._cache: Expiring[bytes, bytes] = Expiring(cache_seconds)  # digest of (principal, secret) → key
        # Each derivation holds 32 MiB for tens of milliseconds: at most two at once, so that a
        # caller sending many (wrong) secrets cannot take the node's memory or every thread.
        self._derivations = anyio.CapacityLimiter(KDF_AT_ONCE)

    async def unlock(self, principal: Principal, secret: str) -> Principal:
        """``principal`` with its conversation key. The first secret a principal gives becomes
        theirs; another one later is ``WrongSecret``."""
        if not MIN_SECRET_CHARS <= len(secret) <= MAX_SECRET_CHARS:
            raise InvalidRequest(
                f"the conversation secret must be {MIN_SECRET_CHARS} to {MAX_SECRET_CHARS} characters"
            )
        slot = hashlib.sha256(f"{principal.id}\0{secret}".encode()).digest()
        key = self._cache.get(slot)
        if key is None:
            key = await self._key(principal.id, secret)
            self._cache.put(slot, key)
        return replace(principal, l2_key=key)

    async def _key(self, principal_id: str, secret: str) -> bytes:
        known = await self._store.conversation_key(principal_id)
        if known is None:
            salt = secrets.token_bytes(16)
            key = await self._derive(secret, salt)
            if await self._store.put_conversation_key(
                principal_id, salt, crypto.check_value(key), datetime.now(UTC)
            ):
                return key
            known = await self._store.conversation_key(principal_id)  # set by a concurrent request
            assert known is not None
        salt, check = known
        key = await self._derive(secret, salt)
        if not hmac.compare_digest(crypto.check_value(key), check):
            raise WrongSecret(
                f"this is not {principal_id}'s conversation secret (the first one given became it; "
                "the admin can reset it with `noosphere user reset-secret`, and older conversations "
                "then stay sealed)"
            )
        return key

    async def _derive(self, secret: str, salt: bytes) -> bytes:
        return await anyio.to_thread.run_sync(crypto.derive_key, secret, salt, limiter=self._derivations)

    async def reset(self, principal_id: str) -> bool:
        """Forget a principal's salt and check value: its next secret becomes its own. What was
        sealed before stays sealed for good."""
        self._cache.clear()
        return await self._store.delete_conversation_key(principal_id)


__all__ = ["MIN_SECRET_CHARS", "SECRET_ENV", "SECRET_HEADER", "ConversationKeys"]
