"""What federation reads from the store: the ``federated`` zone and nothing else, through the
``federated_memories`` view (private and shared memories, and anything encrypted, are not in it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from noosphere.memory.model import Memory, Zone
from noosphere.store.contract.audit import TreeHead
from noosphere.store.contract.memories import Vector

ALL_PEERS = "*"  # the pause target that stops all federation


@dataclass(frozen=True)
class StoredPeer:
    """A peer added at run time (``noosphere peers add``)."""

    id: str
    public_key: str
    url: str
    added_at: datetime


@dataclass(frozen=True)
class Replica:
    """A federated record as it travels: the memory, its embedding, and its origin's seal
    (None for this node's own records, which are signed as they are served)."""

    memory: Memory
    vector: Vector | None = None
    seal: str | None = None
    index_text: str | None = None  # what full-text search indexes here (default: the content)


@dataclass(frozen=True)
class FederatedItem:
    """What reconciliation compares of a federated record: which one, and in what state."""

    seq: int
    id: str
    hlc: int
    tombstone: bool
    origin: str
    signed: bool  # sealed by its origin (a peer's record that can be passed on)
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Witnessed:
    """What this node last verified of a peer's audit log (``federation/witness.py``)."""

    peer: str
    head: TreeHead  # the newest head found consistent with all before it
    checked_at: datetime
    problem: str | None = None  # set once the peer's log failed a check: it stays set
    evidence: str | None = None  # JSON: the two signed heads that cannot both be honest


def refuse_unfederated(records: Sequence[Replica]) -> None:
    """``ValueError`` unless every record is a plain (unencrypted) federated memory."""
    for record in records:
        memory = record.memory
        if memory.zone is not Zone.FEDERATED or memory.encrypted:
            raise ValueError(f"record {memory.id[:64]!r} is not a plain federated memory")


class FederatedRecords(Protocol):
    """Every method is one transaction."""

    async def federated_changes(self, after_seq: int, limit: int) -> list[Replica]:
        """Federated records (tombstones included) with a sequence number above ``after_seq``, in
        order, with their embeddings and seals: the change feed peers pull."""

    async def federated_records(self, ids: Sequence[str]) -> list[Replica]:
        """The federated records with these ids (those that exist), as the feed sends them."""

    async def federated_items(self, after_seq: int) -> list[FederatedItem]:
        """Every federated record with a sequence number above ``after_seq``, in order, as
        reconciliation compares them."""

    async def federated_count(self) -> int:
        """How many federated records (tombstones included) this node holds."""

    async def federation_horizon(self) -> int:
        """The highest sequence number of a federated tombstone purged from this node's feed (0:
        none yet): a peer that read the feed only below it missed deletions."""

    async def drop_federated(self, origin: str, ids: Sequence[str]) -> int:
        """Delete for good the federated records with these ids whose origin is ``origin`` (a
        peer's records it no longer holds, found by a full resynchronisation); how many."""

    async def federation_cursor(self, peer: str) -> int:
        """The last sequence number of ``peer``'s change feed applied here (0: none yet)."""

    async def apply_federated(self, peer: str, records: Sequence[Replica], cursor: int | None) -> int:
        """Apply records pulled from ``peer`` and move its feed cursor to ``cursor`` (None: leave
        it), in one transaction; how many changed something here. A record new here is inserted
        as it is (its id, origin, clock and seal kept; no deduplication, so every node holds
        the same ids); a known one takes the peer's tombstone if its clock is not older.

        Which version is current is derived here, never taken from the peer: a record is
        superseded when another record supersedes it, or when a sibling superseding the same
        record has a greater (clock, origin), tombstones included (last writer wins). So every
        node that holds the same records agrees, whatever order they came in.

        Records of any zone but federated, or encrypted ones, are refused (``ValueError``), and
        a record whose id belongs to a memory of another zone here is left alone."""

    async def put_peer(self, peer: StoredPeer) -> None:
        """Add a peer, or replace the one with its id."""

    async def stored_peers(self) -> list[StoredPeer]:
        """Peers added at run time, by id."""

    async def remove_peer(self, peer_id: str) -> bool:
        """Forget a peer added at run time (and its feed cursor); False if there was none."""

    async def witnessed(self) -> list[Witnessed]:
        """What this node verified of each peer's audit log, by peer."""

    async def put_witnessed(self, record: Witnessed) -> None:
        """Keep what this node verified of a peer's log (replacing the last)."""

    async def set_paused(self, target: str, paused: bool) -> bool:
        """Pause or resume federation with one peer, or all of it (``ALL_PEERS``); False if
        nothing changed."""

    async def paused(self) -> set[str]:
        """What is paused: peer ids, and ``ALL_PEERS`` when all federation is."""
