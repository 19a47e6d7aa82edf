"""Principals (admin, users, agents, workers) and the salts of their conversation keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class PrincipalRecord:
    id: str
    kind: str  # admin | agent | user
    name: str
    level: str | None
    token_hash: str
    key_salt: bytes
    created_at: datetime
    disabled: bool = False
    capture: bool = False  # keeps its chat exchanges as conversation memories (users opt in)
    models: tuple[str, ...] | None = None  # workers: the model names it may serve (None: any)


class Principals(Protocol):
    """Every method is one transaction."""

    async def put_principal(self, record: PrincipalRecord) -> None:
        """Insert or replace a principal (by id)."""

    async def principal_by_token_hash(self, token_hash: str) -> PrincipalRecord | None: ...

    async def principal(self, principal_id: str) -> PrincipalRecord | None: ...

    async def principals(self, kind: str | None = None) -> list[PrincipalRecord]: ...

    async def delete_principal(self, principal_id: str) -> bool: ...

    async def forget_principal(self, principal_id: str, mailbox: str) -> int:
        """What a deleted principal leaves besides its memories, gone in one transaction: its
        standing approval grants, its mailbox and subscriptions, its API keys (revoked). Returns
        how many records went."""

    async def conversation_key(self, principal_id: str) -> tuple[bytes, str] | None:
        """The salt and check value of a principal's conversation key, once it has one."""

    async def put_conversation_key(self, principal_id: str, salt: bytes, check: str, at: datetime) -> bool:
        """Record them, unless the principal has some already (then False)."""

    async def delete_conversation_key(self, principal_id: str) -> bool:
        """Forget them (the owner lost the secret); False if there were none."""
