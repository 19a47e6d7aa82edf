"""This node's federated records as reconciliation compares them, kept up to date from the store's
feed instead of read whole for every exchange.

Each record is one item: its clock as the stamp, and a hash of its id and state (live or erased)
as the item id, so a record erased on one node and live on another differs. Whether a record is
superseded is not part of it: every node derives that from the records it holds. Records this
node cannot pass on (a peer's record without its origin's seal) are left out.

The inventory reads only records whose sequence number is new since it last looked; a purge
(expired memories, old tombstones) removes rows without a new sequence number, which the count
of rows reveals, and the inventory is then read again whole. Rows are counted at most every
``COUNT_EVERY`` seconds, not for every reconciliation message: a snapshot that still holds a
purged record for a moment only makes a peer ask for a record that is gone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from noosphere.federation.reconcile import Snapshot, item_id
from noosphere.store.contract import FederatedItem, FederatedRecords

COUNT_EVERY = 5.0  # seconds between counts of the store's rows (which reveal a purge)


def item_of(memory_id: str, tombstone: bool) -> bytes:
    return item_id(f"{memory_id}\n{'erased' if tombstone else 'live'}")


class Inventory:
    def __init__(self, records: FederatedRecords, own_id: str) -> None:
        self.records, self.own_id = records, own_id
        self._rows: dict[str, FederatedItem] = {}
        self._seq = 0
        self._version = 0  # bumped whenever the rows change
        # Per tag filter (None: everything): the version it was built at, and the snapshot.
        self._snapshots: dict[frozenset[str] | None, tuple[int, Snapshot]] = {}
        self._memory_of: dict[bytes, str] = {}
        self._lock = asyncio.Lock()
        self._counted = -COUNT_EVERY  # when the rows were last counted (monotonic)

    async def snapshot(self, tags: Sequence[str] | None = None) -> Snapshot:
        """The current set, or only the records carrying one of ``tags`` (and every tombstone:
        erasure leaves no tags). Rebuilt only if something changed since it was last built."""
        async with self._lock:
            if await self._catch_up():
                self._version += 1
            if time.monotonic() - self._counted >= COUNT_EVERY:
                self._counted = time.monotonic()
                if len(self._rows) != await self.records.federated_count():
                    self._rows, self._seq, self._memory_of = {}, 0, {}
                    await self._catch_up()
                    self._version += 1
            key = frozenset(tags) if tags else None
            built = self._snapshots.get(key)
            if built is None or built[0] != self._version:
                built = (self._version, self._build(key))
                self._snapshots[key] = built
            return built[1]

    def memory_ids(self, items: set[bytes]) -> list[str]:
        """The ids of the records behind these items, as of the last snapshot (unknown ones are
        left out)."""
        return [self._memory_of[item] for item in items if item in self._memory_of]

    def origin_of(self, memory_id: str) -> str | None:
        row = self._rows.get(memory_id)
        return None if row is None else row.origin

    async def _catch_up(self) -> bool:
        fresh = await self.records.federated_items(self._seq)
        for row in fresh:
            self._rows[row.id] = row
            self._memory_of[item_of(row.id, row.tombstone)] = row.id
        if fresh:
            self._seq = fresh[-1].seq
        return bool(fresh)

    def _build(self, tags: frozenset[str] | None) -> Snapshot:
        items = [
            (row.hlc, item_of(row.id, row.tombstone))
            for row in self._rows.values()
            if (row.origin == self.own_id or row.signed)
            and (tags is None or row.tombstone or not tags.isdisjoint(row.tags))
        ]
        return Snapshot(items)


__all__ = ["Inventory", "item_of"]
