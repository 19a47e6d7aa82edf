"""The append-only audit log and its signed tree heads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class AuditEntry:
    seq: int  # position in the log, from 0
    entry: str  # canonical JSON, exactly the bytes the leaf hashes
    leaf: bytes  # RFC 9162 leaf hash of ``entry``


@dataclass(frozen=True)
class TreeHead:
    size: int  # entries covered: seq 0 .. size-1
    root: bytes
    at: datetime
    signature: bytes  # Ed25519, by the node's key, over ``governance.audit.head_message``


class AuditLog(Protocol):
    """Every method is one transaction."""

    async def append_audit(self, entries: Sequence[tuple[str, bytes]]) -> int:
        """Append (entry, leaf) pairs at the end of the log, atomically even across processes;
        returns the seq of the first."""

    async def audit_entries(self, start: int = 0, limit: int | None = None) -> list[AuditEntry]:
        """Entries from seq ``start`` on, in order."""

    async def put_tree_head(self, head: TreeHead) -> None:
        """Keep a signed tree head (a second head of the same size is ignored)."""

    async def tree_heads(self) -> list[TreeHead]:
        """Every signed tree head, smallest first."""
