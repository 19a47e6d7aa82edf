"""Federated memory sync, both sides: what this node serves its peers, and what it takes from them.

- **Fast path.** Each node pulls a peer's change feed since the last sequence number it applied.
- **Repair.** Every ``federation.repair_seconds`` it reconciles its federated records with each
  live peer's (``reconcile.py``), over records stamped within the tombstone retention window,
  and fetches what it lacks: whatever the feed missed (a record the peer got from a third node
  while this one was away, a restore from backup) is found in a few round trips.
- **Full resync.** Deletions are tombstones kept for ``memory.tombstone_retention_days``. A peer
  whose feed this node last read below the peer's last purged tombstone has missed deletions: this
  node reconciles all of its records with the peer's, drops the peer's own records the peer no
  longer holds (the origin of a record is the authority on it), and fetches the rest.

Records travel sealed by their origin (``provenance.py``); a record whose seal does not check is
refused, so a peer can pass on others' records but never forge or erase one. This node's own
records coming back are ignored. What a peer may read and write is its ``read``/``read_tags`` and
``write``/``write_tags``; which version of a record is current is derived by the store, never
taken from the peer.
"""

from __future__ import annotations

import base64
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray
from pydantic import ValidationError

from noosphere.clock import HybridLogicalClock, physical_ms, stamp_at
from noosphere.config import MemorySettings, PeerSettings
from noosphere.embeddings.base import Embedder
from noosphere.expiring import Expiring
from noosphere.federation.inventory import Inventory, item_of
from noosphere.federation.provenance import KeyRing, Sealer
from noosphere.federation.reconcile import Malformed, Reconciler, Snapshot
from noosphere.federation.records import (
    MORE_MAX,
    TRADE_MAX,
    ChangesPage,
    PeerRecord,
    ReconcileAnswer,
    ReconcileRequest,
    RecordsPage,
    wire,
)
from noosphere.identity import NodeKey
from noosphere.memory.model import Memory
from noosphere.store.contract import FederatedRecords, Replica

log = logging.getLogger(__name__)

CHANGES_PATH = "/federation/v1/changes"
RECONCILE_PATH = "/federation/v1/reconcile"
RECORDS_PATH = "/federation/v1/records"
PAGES_PER_PULL = 5  # pages pulled from one peer per interval: a long backlog does not hog the loop
PAGE_SIZE = 200
MAX_AHEAD_MS = 60_000  # a record stamped further in the future waits until this node's clock is near
REFETCH_AFTER = 600.0  # seconds before repair fetches the same item from a peer again
DAY_MS = 86_400_000


# Sends a signed request to a peer: its answer's body, or None if it refused; network failures
# raise (``transport.call`` over HTTP; a simulated network in tests).
Send = Callable[[PeerSettings, str, dict[str, Any]], Awaitable[bytes | None]]


class LocalMemory(Protocol):
    """What pulling needs of the memory service: its embedder, clock and limits."""

    @property
    def embedder(self) -> Embedder: ...

    @property
    def clock(self) -> HybridLogicalClock: ...

    @property
    def settings(self) -> MemorySettings: ...

    async def embed(self, texts: Sequence[str]) -> NDArray[np.float32]: ...

    def index_of(self, memory: Memory, context: Sequence[str] = ()) -> str:
        """What full-text search indexes for ``memory`` here."""
        ...


@dataclass
class Repair:
    """What one reconciliation with a peer did."""

    rounds: int = 0
    sent: int = 0  # bytes of reconciliation messages, both ways
    received: int = 0
    fetched: int = 0
    applied: int = 0
    dropped: int = 0
    refused: Counter[str] = field(default_factory=Counter)


class Sync:
    def __init__(self, key: NodeKey, records: FederatedRecords, memory: LocalMemory) -> None:
        self.key, self.records, self.memory = key, records, memory
        self.inventory = Inventory(records, key.id)
        self.ring = KeyRing()
        self.sealer = Sealer(key)
        self.changed: Callable[[], None] = lambda: None  # records a peer pushed changed something
        # Items repair fetched lately: one this node refused, or that changed nothing here (a
        # record erased here by a local admin), is not fetched again at every repair.
        self._fetched: Expiring[tuple[str, bytes], bool] = Expiring(REFETCH_AFTER, limit=100_000)

    # -- serving ---------------------------------------------------------------------------------
    def _outgoing(self, peer: PeerSettings, replicas: Sequence[Replica]) -> list[dict[str, Any]]:
        """Replicas as this peer may read them: sealed (this node's own now; others' as their
        origin sealed them, or not at all), and within its ``read_tags``."""
        out = []
        for replica in replicas:
            memory = replica.memory
            if peer.read_tags and not memory.tombstone and not set(memory.tags) & set(peer.read_tags):
                continue
            if memory.origin == self.key.id:
                replica = Replica(memory, replica.vector, self.sealer.seal(memory))
            elif replica.seal is None:
                continue
            out.append(wire(replica))
        return out

    async def changes(self, peer: PeerSettings, after: int, limit: int) -> dict[str, Any]:
        """A page of this node's federated change feed, as ``peer`` reads it."""
        if not peer.read:
            return {"records": [], "last": after, "horizon": 0}
        feed = await self.records.federated_changes(after, limit)
        last = feed[-1].memory.seq if feed else after
        horizon = await self.records.federation_horizon()
        return {"records": self._outgoing(peer, feed), "last": last, "horizon": horizon}

    async def reconcile(self, peer: PeerSettings, asked: ReconcileRequest) -> dict[str, Any]:
        """This node's answer to one message of a reconciliation ``peer`` leads (``Malformed``
        if it cannot be read): first the records it sent that this node lacks are taken, then
        the message is answered, with the records this node found the peer lacks."""
        if asked.records:
            records, _ = due(await self._usable(peer, asked.records, Counter()), 0, 0)
            if await self._apply(peer, records, None):
                self.changed()
        message = base64.b64decode(asked.message, validate=True)
        snapshot = await self.inventory.snapshot(peer.read_tags) if peer.read else Snapshot([])
        side = Reconciler(snapshot, initiator=False, since=asked.since, complete=asked.complete)
        answer = side.respond(message) if message else None
        owed = [] if asked.complete else sorted(side.outcome.have)
        return {
            "message": None if answer is None else base64.b64encode(answer).decode(),
            "records": await self._records_of(peer, owed[:TRADE_MAX]),
            "more": [item.hex() for item in owed[TRADE_MAX : TRADE_MAX + MORE_MAX]],
        }

    async def _records_of(self, peer: PeerSettings, items: Sequence[bytes]) -> list[dict[str, Any]]:
        ids = self.inventory.memory_ids(set(items))
        return self._outgoing(peer, await self.records.federated_records(ids)) if ids else []

    async def records_for(self, peer: PeerSettings, items: Sequence[bytes]) -> dict[str, Any]:
        """The records behind reconciliation items ``peer`` found it lacks."""
        return {"records": await self._records_of(peer, items) if peer.read else []}

    # -- taking ----------------------------------------------------------------------------------
    async def pull(self, send: Send, peer: PeerSettings) -> int:
        """Read the peer's feed since last time and apply it (the fast path); resynchronise
        fully first if the peer purged tombstones this node never read. How many records
        changed something here."""
        after = await self.records.federation_cursor(peer.id)
        changed = 0
        for _ in range(PAGES_PER_PULL):
            data = await send(peer, CHANGES_PATH, {"after": after, "limit": PAGE_SIZE})
            if data is None:
                break
            try:
                page = ChangesPage.model_validate_json(data)
            except ValidationError:
                log.warning("federation peer %s sent a malformed page; ignored", peer.id)
                break
            if 0 < after < page.horizon:
                log.warning("federation peer %s purged deletions this node never read: full resync", peer.id)
                report = await self.repair(send, peer, since=0, resync=True)
                changed += report.applied + report.dropped
                after = page.horizon
                await self.records.apply_federated(peer.id, [], after)
                continue
            records = await self._usable(peer, page.records, Counter())
            ready, cursor = due(records, max(after, page.last), after)
            changed += await self._apply(peer, ready, cursor)
            after = cursor
            if len(ready) < len(records):
                log.warning("federation peer %s sent a record stamped ahead of this clock; deferred", peer.id)
                break
            if len(page.records) < PAGE_SIZE:
                break
        return changed

    def window(self) -> int:
        """The earliest stamp repair compares: records older than tombstones are kept could have
        been deleted everywhere and purged, so they are never brought back by repair."""
        days = self.memory.settings.tombstone_retention_days
        return stamp_at(time.time_ns() // 1_000_000 - int(days * DAY_MS * 0.9))

    async def repair(
        self,
        send: Send,
        peer: PeerSettings,
        since: int | None = None,
        resync: bool = False,
    ) -> Repair:
        """Reconcile with ``peer`` and fetch what this node lacks. With ``resync``, also drop the
        peer's own records it no longer holds. ``since``: the window (default ``window()``)."""
        report = Repair()
        since = self.window() if since is None else since
        snapshot = await self.inventory.snapshot()
        side = Reconciler(snapshot, since=since, complete=resync)
        message: bytes | None = side.initiate()
        traded: set[bytes] = set()  # items whose records were sent, or came, with the messages
        more: set[bytes] = set()  # items the peer found this node lacks, to fetch
        try:
            while True:
                # The records this node found the peer lacks go with the next message.
                owed = [] if resync or not peer.read else sorted(side.outcome.have - traded)[:TRADE_MAX]
                traded |= set(owed)
                if message is None and not owed:
                    break
                report.rounds += 1
                report.sent += len(message or b"")
                payload = {
                    "since": since,
                    "message": base64.b64encode(message or b"").decode(),
                    "complete": resync,
                    "records": await self._records_of(peer, owed),
                }
                data = await send(peer, RECONCILE_PATH, payload)
                if data is None:
                    return report
                answer = ReconcileAnswer.model_validate_json(data)
                came, _ = due(await self._usable(peer, answer.records, report.refused), 0, 0)
                report.fetched += len(answer.records)
                report.applied += await self._apply(peer, came, None)
                traded |= {item_of(r.memory.id, r.memory.tombstone) for r in came}
                room = MORE_MAX - len(more)  # a peer cannot make one repair fetch without end
                more |= {bytes.fromhex(item) for item in answer.more[: max(0, room)]}
                if answer.message is None:
                    message = None
                    continue
                received = base64.b64decode(answer.message, validate=True)
                report.received += len(received)
                message = side.respond(received) if message is not None else None
        except (Malformed, ValidationError, ValueError) as exc:
            log.warning("federation peer %s broke off reconciliation: %s", peer.id, exc)
            return report
        if resync:
            theirs = [
                memory_id
                for memory_id in self.inventory.memory_ids(side.outcome.have)
                if self.inventory.origin_of(memory_id) == peer.id
            ]
            report.dropped = await self.records.drop_federated(peer.id, theirs)
        wanted = (side.outcome.need | more) - traded
        need = [item for item in wanted if not self._fetched.get((peer.id, item))]
        for start in range(0, len(need), PAGE_SIZE):
            chunk = need[start : start + PAGE_SIZE]
            data = await send(peer, RECORDS_PATH, {"items": [i.hex() for i in chunk]})
            if data is None:
                break
            try:
                page = RecordsPage.model_validate_json(data)
            except ValidationError:
                log.warning("federation peer %s sent malformed records; ignored", peer.id)
                break
            report.fetched += len(page.records)
            records, _ = due(await self._usable(peer, page.records, report.refused), 0, 0)
            report.applied += await self._apply(peer, records, None)
            for item in chunk:
                self._fetched.put((peer.id, item), True)
        if report.refused:
            log.warning("federation peer %s: repair refused %s", peer.id, dict(report.refused))
        return report

    async def _apply(self, peer: PeerSettings, records: list[Replica], cursor: int | None) -> int:
        records = [replace(r, index_text=self.memory.index_of(r.memory)) for r in records]
        changed = await self.records.apply_federated(peer.id, records, cursor)
        for replica in records:
            self.memory.clock.observe(replica.memory.hlc)  # this node's next stamps come after
        return changed

    async def _usable(
        self, peer: PeerSettings, raw: list[dict[str, Any]], refused: Counter[str]
    ) -> list[Replica]:
        """The records that pass every check (a bad one is skipped and counted, so it cannot
        block the feed), with vectors from this node's embedder where the peer's are of another."""
        out: list[Replica] = []
        for item in raw:
            try:
                replica = PeerRecord.model_validate(item).replica()
            except ValidationError:
                refused["malformed"] += 1
                continue
            memory = replica.memory
            reason = self._refusal(peer, replica)
            if reason:
                refused[reason] += 1
            elif memory.origin != self.key.id:  # this node's own records: it knows them already
                out.append(replica)
        if refused:
            log.warning("federation peer %s sent records this node refuses: %s", peer.id, dict(refused))
        model, dimension = self.memory.embedder.model_id, self.memory.embedder.dimension
        stale = [
            i
            for i, replica in enumerate(out)
            if not replica.memory.tombstone
            and (
                replica.memory.embed_model != model
                or replica.vector is None
                or len(replica.vector) != dimension
            )
        ]
        if stale:
            vectors = await self.memory.embed([out[i].memory.content for i in stale])
            for i, vector in zip(stale, vectors, strict=True):
                memory = out[i].memory.model_copy(update={"embed_model": model})
                out[i] = Replica(memory, vector, out[i].seal)
        return out

    def _refusal(self, peer: PeerSettings, replica: Replica) -> str | None:
        memory = replica.memory
        if not peer.write:
            return "not_writable"
        if len(memory.content) > self.memory.settings.max_content_chars:  # this node's limit
            return "too_long"
        if peer.write_tags and not memory.tombstone and not set(memory.tags) & set(peer.write_tags):
            return "tags"
        if memory.origin != self.key.id and not self.ring.verified(memory, replica.seal):
            return "bad_seal"
        return None


def due(
    records: list[Replica], last: int, after: int, now_ms: int | None = None
) -> tuple[list[Replica], int]:
    """The records to apply now, and how far the feed is read once they are: up to the first
    record stamped more than ``MAX_AHEAD_MS`` ahead of this node's clock (a peer whose clock runs
    fast, or lies), which is read again later instead of pulling every stamp here into the future."""
    limit = (time.time_ns() // 1_000_000 if now_ms is None else now_ms) + MAX_AHEAD_MS
    for n, replica in enumerate(records):
        if physical_ms(replica.memory.hlc) > limit:
            return records[:n], records[n - 1].memory.seq if n else after
    return records, last


__all__ = ["CHANGES_PATH", "RECONCILE_PATH", "RECORDS_PATH", "Repair", "Send", "Sync", "due"]
