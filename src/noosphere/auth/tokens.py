"""Bearer tokens: creation, hashing at rest, resolution to a principal."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from noosphere.auth.names import ADMIN_TOKEN_FILE
from noosphere.auth.principal import ADMIN_ID, KeyLimits, Level, Principal, PrincipalKind, principal_id
from noosphere.errors import Conflict, InvalidRequest, NotFound, Unauthenticated
from noosphere.expiring import Expiring
from noosphere.pool.budget import BudgetPeriod
from noosphere.singleflight import SingleFlight
from noosphere.store.contract import ApiKeyRecord, MemoryStore, PrincipalRecord

TOKEN_PREFIX = "ns_"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenAuthority:
    """Issues tokens (keeping only their hashes) and turns presented tokens into principals."""

    def __init__(self, store: MemoryStore, cache_seconds: float = 0.0) -> None:
        self._store = store
        # token hash -> principal: saves a store read on every request. Cleared whenever this
        # authority changes a credential.
        self._cache: Expiring[str, Principal] = Expiring(cache_seconds)
        self._lookups: SingleFlight[str, Principal] = SingleFlight()  # one read per token at a time

    async def ensure_admin(self, configured: str | None, data_dir: Path) -> str | None:
        """Make sure an admin credential exists. Returns a newly created token (to print once)."""
        token = configured or os.environ.get("NOOSPHERE_ADMIN_TOKEN")
        current = await self._store.principal(ADMIN_ID)
        if token:
            if current is None or current.token_hash != hash_token(token):
                await self._put(PrincipalKind.ADMIN, "admin", None, token)
            return None
        if current is not None:
            return None
        token = new_token()
        await self._put(PrincipalKind.ADMIN, "admin", None, token)
        path = data_dir / ADMIN_TOKEN_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(token + "\n")
        return token

    async def _put(
        self,
        kind: PrincipalKind,
        name: str,
        level: Level | None,
        token: str,
        capture: bool = False,
        models: tuple[str, ...] | None = None,
    ) -> PrincipalRecord:
        record = PrincipalRecord(
            id=principal_id(kind, name),
            kind=kind.value,
            name=name,
            level=None if level is None else level.value,
            token_hash=hash_token(token),
            key_salt=secrets.token_bytes(16),
            created_at=datetime.now(UTC),
            capture=capture,
            models=models,
        )
        await self._store.put_principal(record)
        self._cache.clear()
        return record

    async def create(
        self, kind: PrincipalKind, name: str, level: Level | None = None
    ) -> tuple[Principal, str]:
        """A new agent or user with a fresh token (returned once, stored only as a hash)."""
        if not NAME_PATTERN.match(name):
            raise InvalidRequest(
                "names are 1-64 letters, digits, '-' or '_', starting with a letter or digit"
            )
        if kind is PrincipalKind.ADMIN:
            raise InvalidRequest("there is one admin; rotate its token instead")
        if kind is PrincipalKind.WORKER and level is not None:
            raise InvalidRequest("workers have no level")
        if await self._store.principal(principal_id(kind, name)) is not None:
            raise Conflict(f"{kind.value} {name!r} already exists")
        token = new_token()
        record = await self._put(kind, name, level, token)
        return self._principal(record), token

    async def set_level(self, name: str, level: Level) -> None:
        """Move an existing agent to another level; its token stays valid."""
        record = await self._store.principal(principal_id(PrincipalKind.AGENT, name))
        if record is None:
            raise NotFound(f"no agent named {name!r}")
        await self._store.put_principal(replace(record, level=level.value))
        self._cache.clear()

    async def rotate(self, kind: PrincipalKind, name: str) -> str:
        """Issue a new token for an existing agent or user; the old one stops working.

        Conversations stay readable: their key derives from the person's own secret, not the token."""
        record = await self._store.principal(principal_id(kind, name))
        if record is None:
            raise NotFound(f"no {kind.value} named {name!r}")
        token = new_token()
        level = None if record.level is None else Level(record.level)
        await self._put(kind, name, level, token, record.capture, record.models)
        return token

    async def set_capture(self, name: str, capture: bool) -> None:
        """Opt a user in to (or out of) keeping their chat exchanges as conversation memories."""
        record = await self._store.principal(principal_id(PrincipalKind.USER, name))
        if record is None:
            raise NotFound(f"no user named {name!r}")
        await self._store.put_principal(replace(record, capture=capture))
        self._cache.clear()

    async def issue(self, kind: PrincipalKind, name: str, models: Sequence[str] | None = None) -> str:
        """A new token for ``name``: rotated if it exists, created (without a level) if not. For a
        worker, ``models`` are the model names the token may announce (None: any)."""
        try:
            token = await self.rotate(kind, name)
        except NotFound:
            token = (await self.create(kind, name))[1]
        if models is not None:
            record = await self._store.principal(principal_id(kind, name))
            assert record is not None
            await self._store.put_principal(replace(record, models=tuple(models)))
            self._cache.clear()
        return token

    async def delete(self, kind: PrincipalKind, name: str) -> None:
        self._cache.clear()
        if not await self._store.delete_principal(principal_id(kind, name)):
            raise NotFound(f"no {kind.value} named {name!r}")

    async def list_principals(self, kind: PrincipalKind | None = None) -> list[PrincipalRecord]:
        return await self._store.principals(None if kind is None else kind.value)

    async def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise Unauthenticated("missing bearer token (Authorization: Bearer <token>)")
        digest = hash_token(token)
        cached = self._cache.get(digest)
        if cached is not None:
            return cached
        principal = await self._lookups.do(digest, lambda: self._lookup(token, digest))
        self._cache.put(digest, principal)
        return principal

    async def _lookup(self, token: str, digest: str) -> Principal:
        record = await self._store.principal_by_token_hash(digest)
        if record is not None and not record.disabled:
            return self._principal(record)
        key = await self._store.api_key_by_token_hash(digest)
        if key is not None and not key.revoked:
            owner = await self._store.principal(key.user_id)
            if owner is not None and not owner.disabled:
                # An API key acts as its user.
                return replace(
                    self._principal(owner),
                    key=KeyLimits(key.id, key.rpm, key.tpm, key.budget, key.budget_period),
                    capture=key.capture,
                )
        raise Unauthenticated("invalid or revoked token")

    async def create_api_key(
        self,
        user: str,
        name: str = "default",
        rpm: int | None = None,
        tpm: int | None = None,
        budget: float | None = None,
        budget_period: BudgetPeriod = "total",
        capture: bool = False,
    ) -> tuple[ApiKeyRecord, str]:
        """A new API key for an existing user (returned once, stored only as a hash)."""
        if await self._store.principal(principal_id(PrincipalKind.USER, user)) is None:
            raise NotFound(f"no user named {user!r} (create one with `noosphere user create {user}`)")
        for limit, label in ((rpm, "rpm"), (tpm, "tpm"), (budget, "budget")):
            if limit is not None and limit <= 0:
                raise InvalidRequest(f"{label} must be positive")
        token = new_token()
        record = ApiKeyRecord(
            id="key_" + secrets.token_hex(6),
            user_id=principal_id(PrincipalKind.USER, user),
            name=name,
            token_hash=hash_token(token),
            key_salt=secrets.token_bytes(16),
            rpm=rpm,
            tpm=tpm,
            budget=budget,
            created_at=datetime.now(UTC),
            budget_period=budget_period,
            capture=capture,
        )
        await self._store.put_api_key(record)
        self._cache.clear()
        return record, token

    async def api_keys(self, user: str | None = None) -> list[ApiKeyRecord]:
        return await self._store.api_keys(None if user is None else principal_id(PrincipalKind.USER, user))

    async def revoke_api_key(self, key_id: str) -> None:
        self._cache.clear()
        if not await self._store.revoke_api_key(key_id):
            raise NotFound(f"no active API key {key_id!r}")

    async def by_id(self, principal_id_: str) -> Principal:
        """A principal by id (for local, already-trusted callers such as stdio)."""
        record = await self._store.principal(principal_id_)
        if record is None:
            raise NotFound(f"no principal {principal_id_!r}")
        return self._principal(record)

    @staticmethod
    def _principal(record: PrincipalRecord) -> Principal:
        return Principal(
            id=record.id,
            kind=PrincipalKind(record.kind),
            name=record.name,
            level=None if record.level is None else Level(record.level),
            capture=record.capture,
            models=record.models,
        )
