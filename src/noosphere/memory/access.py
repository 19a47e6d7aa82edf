"""Which zones a principal may write. Reading is decided by the store from the principal id:
one's own private memories plus every shared and federated one."""

from __future__ import annotations

from noosphere.auth.principal import Level, Principal, PrincipalKind
from noosphere.errors import PermissionDenied
from noosphere.memory.model import Zone

_ALL = frozenset(Zone)
WRITE_ZONES: dict[Level | PrincipalKind, frozenset[Zone]] = {
    PrincipalKind.ADMIN: _ALL,
    PrincipalKind.USER: frozenset({Zone.PRIVATE, Zone.SHARED}),
    PrincipalKind.WORKER: frozenset(),
    Level.L0: _ALL,
    Level.L1: _ALL,
    Level.L2: frozenset({Zone.PRIVATE, Zone.SHARED}),
    Level.L3: frozenset({Zone.PRIVATE}),
}


def writable_zones(principal: Principal) -> frozenset[Zone]:
    if principal.kind is PrincipalKind.AGENT:
        return WRITE_ZONES[principal.level or Level.L3]
    return WRITE_ZONES[principal.kind]


def check_write(principal: Principal, zone: Zone) -> None:
    if zone not in writable_zones(principal):
        who = f"level {principal.level.value}" if principal.level else principal.kind.value
        raise PermissionDenied(f"a {who} principal may not write to the {zone.value} zone")


def check_memory_access(principal: Principal) -> None:
    """Workers serve models; memory is for agents, users and the admin."""
    if principal.kind is PrincipalKind.WORKER:
        raise PermissionDenied("worker credentials cannot use memory")


def can_modify(principal: Principal, owner: str) -> bool:
    """Forget and supersede: the owner, or the node admin."""
    return principal.is_admin or principal.id == owner
