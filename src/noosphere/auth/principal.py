"""Who is calling: every request resolves to a ``Principal`` from its bearer token first."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from noosphere.pool.budget import BudgetPeriod


class PrincipalKind(StrEnum):
    ADMIN = "admin"
    AGENT = "agent"
    USER = "user"
    WORKER = "worker"  # a model worker joining the pool; no access to memory


class Level(StrEnum):
    L0 = "L0"  # system
    L1 = "L1"  # orchestrator
    L2 = "L2"  # specialist
    L3 = "L3"  # assistant


@dataclass(frozen=True)
class KeyLimits:
    """The API key a request came with, and its limits (None: unlimited)."""

    id: str
    rpm: int | None = None
    tpm: int | None = None
    budget: float | None = None
    budget_period: BudgetPeriod = "total"


@dataclass(frozen=True)
class Principal:
    id: str  # "admin", "agent:<name>" or "user:<name>"; the owner of what it writes
    kind: PrincipalKind
    name: str
    level: Level | None = None
    # Key for L2 (encrypted) memories, derived from the secret the caller sent with this request
    # (``auth/conversation_key.py``); never stored. None when it sent none.
    l2_key: bytes | None = None
    key: KeyLimits | None = None  # set when the caller used a user API key
    capture: bool = False  # its chat exchanges are kept as conversation memories (opted in)
    models: tuple[str, ...] | None = None  # a worker: the model names it may serve (None: any)

    @property
    def account(self) -> str:
        """The ledger account this caller pays from."""
        return key_account(self.key.id) if self.key else f"principal:{self.id}"

    @property
    def is_admin(self) -> bool:
        return self.kind is PrincipalKind.ADMIN

    @property
    def is_person(self) -> bool:
        """The admin or a user: someone who may decide human checkpoints."""
        return self.kind in (PrincipalKind.ADMIN, PrincipalKind.USER)

    @property
    def mailbox(self) -> str:
        """This caller's bus address: an agent's name, otherwise its id (``admin``, ``user:bob``)."""
        return self.name if self.kind is PrincipalKind.AGENT else self.id


def key_account(key_id: str) -> str:
    """The ledger account of an API key."""
    return f"key:{key_id}"


ADMIN_ID = "admin"


def principal_id(kind: PrincipalKind, name: str) -> str:
    return ADMIN_ID if kind is PrincipalKind.ADMIN else f"{kind.value}:{name}"


PEER_PREFIX = "peer:"


def peer_principal(node_id: str) -> Principal:
    """A federated peer node acting on this one (its forwarded chats, its searches): metered and
    audited as ``peer:<node id>``, with no private memory of its own here."""
    return Principal(PEER_PREFIX + node_id, PrincipalKind.USER, node_id)
