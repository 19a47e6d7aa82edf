"""What federation reads from the store: the ``federated`` zone and nothing else, through the
``federated_memories`` view (private and shared memories, and anything encrypted, are not in it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from noosphere.memory.model import Memory, Zone
from noosphere.store.contract.memories import Vector

ALL_PEERS = "*"  # the pause target that stops all federation


@dataclass(frozen=True)
class StoredPeer:
    """A peer added at run time (``noosphere peers add``)."""

    id: str
    public_key: str
    url: str
    added_at: datetime


def refuse_unfederated(records: Sequence[tuple[Memory, Vector | None]]) -> None:
    """``ValueError`` unless every record is a plain (unencrypted) federated memory."""
    for memory, _ in records:
        if memory.zone is not Zone.FEDERATED or memory.encrypted:
            raise ValueError(f"record {memory.id[:64]!r} is not a plain federated memory")


class FederatedRecords(Protocol):
    """Every method is one transaction."""

    async def federated_changes(self, after_seq: int, limit: int) -> list[tuple[Memory, Vector | None]]:
        """Federated records (tombstones included) with a sequence number above ``after_seq``, in
        order, with their embeddings: the change feed peers pull."""

    async def federation_cursor(self, peer: str) -> int:
        """The last sequence number of ``peer``'s change feed applied here (0: none yet)."""

    async def apply_federated(
        self, peer: str, records: Sequence[tuple[Memory, Vector | None]], cursor: int
    ) -> int:
        """Apply records pulled from ``peer``'s feed and move its cursor to ``cursor``, in one
        transaction; how many changed something here. A record new here is inserted as it is
        (its id, origin and clock kept; no deduplication, so every node holds the same ids); a
        known one takes the peer's tombstone (if its clock is not older) or its invalidation.
        Records of any zone but federated, or encrypted ones, are refused (``ValueError``), and
        a record whose id belongs to a memory of another zone here is left alone."""

    async def put_peer(self, peer: StoredPeer) -> None:
        """Add a peer, or replace the one with its id."""

    async def stored_peers(self) -> list[StoredPeer]:
        """Peers added at run time, by id."""

    async def remove_peer(self, peer_id: str) -> bool:
        """Forget a peer added at run time (and its feed cursor); False if there was none."""

    async def set_paused(self, target: str, paused: bool) -> bool:
        """Pause or resume federation with one peer, or all of it (``ALL_PEERS``); False if
        nothing changed."""

    async def paused(self) -> set[str]:
        """What is paused: peer ids, and ``ALL_PEERS`` when all federation is."""
