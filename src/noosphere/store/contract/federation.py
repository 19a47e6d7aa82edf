"""What federation reads from the store: the ``federated`` zone and nothing else, through the
``federated_memories`` view (private and shared memories, and anything encrypted, are not in it)."""

from __future__ import annotations

from typing import Protocol

from noosphere.memory.model import Memory
from noosphere.store.contract.memories import Vector


class FederatedRecords(Protocol):
    """Every method is one transaction."""

    async def federated_changes(self, after_seq: int, limit: int) -> list[tuple[Memory, Vector | None]]:
        """Federated records (tombstones included) with a sequence number above ``after_seq``, in
        order, with their embeddings: the change feed peers pull."""
