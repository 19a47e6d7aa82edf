"""What federation reads, on every backend: the federated zone and nothing else. Private and
shared memories, and anything encrypted, cannot come out of the view peers are served from."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest

from noosphere.memory.model import Filters, Zone
from noosphere.store.contract import ALL_PEERS, MemoryStore, Replica, StoredPeer, TreeHead, Witnessed
from noosphere.testing import FakeEmbedder
from tests.contract.test_memories_contract import ALL, NOW, put, record


async def test_only_federated_records_are_in_the_change_feed(
    store: MemoryStore, fake_embedder: FakeEmbedder
) -> None:
    sealed = record(fake_embedder, "ciphertext", zone=Zone.FEDERATED)
    sealed = replace(sealed, memory=sealed.memory.model_copy(update={"encrypted": True}), index_text=None)
    written = await put(
        store,
        record(fake_embedder, "my private note", zone=Zone.PRIVATE),
        record(fake_embedder, "a fact for this node's agents", zone=Zone.SHARED),
        record(fake_embedder, "a fact for every peer", zone=Zone.FEDERATED),
        sealed,
        record(fake_embedder, "another fact for every peer", zone=Zone.FEDERATED, owner="agent:b"),
    )
    feed = await store.federated_changes(0, 100)
    assert [r.memory.content for r in feed] == ["a fact for every peer", "another fact for every peer"]
    assert all(r.memory.zone is Zone.FEDERATED and not r.memory.encrypted for r in feed)
    first, vector = feed[0].memory, feed[0].vector
    assert first.id == written[2].id
    assert vector is not None and np.allclose(vector, fake_embedder.embed(["a fact for every peer"])[0])


async def test_the_feed_pages_by_sequence_and_carries_tombstones(
    store: MemoryStore, fake_embedder: FakeEmbedder
) -> None:
    written = await put(
        store, *(record(fake_embedder, f"federated fact {n}", zone=Zone.FEDERATED) for n in range(5))
    )
    page = await store.federated_changes(0, 2)
    assert [r.memory.id for r in page] == [w.id for w in written[:2]]
    rest = await store.federated_changes(page[-1].memory.seq, 100)
    assert [r.memory.id for r in rest] == [w.id for w in written[2:]]
    await store.tombstone([written[0].id], hlc=99, at=NOW)
    (change,) = await store.federated_changes(written[-1].seq, 100)
    deleted, vector = change.memory, change.vector
    assert (deleted.id, deleted.tombstone, deleted.content, deleted.hlc, vector) == (
        written[0].id,
        True,
        "",
        99,
        None,
    )


async def test_no_private_or_shared_memory_ever_appears(
    store: MemoryStore, fake_embedder: FakeEmbedder
) -> None:
    """Every zone but federated, every kind, tombstoned or not: the view returns none of them."""
    for zone in (Zone.PRIVATE, Zone.SHARED):
        for kind in ("fact", "conversation", "summary"):
            (m,) = await put(store, record(fake_embedder, f"{zone.value} {kind}", zone=zone, kind=kind))
            await store.tombstone([m.id], hlc=5, at=NOW)
            await put(store, record(fake_embedder, f"{zone.value} {kind} again", zone=zone, kind=kind))
    assert await store.federated_changes(0, 1000) == []


def _pulled(embedder: FakeEmbedder, content: str, **changes: object) -> Replica:
    """A federated record as a peer's feed gives it: its own id, origin, clock and seal."""
    made = record(embedder, content, zone=Zone.FEDERATED)
    memory = made.memory.model_copy(update={"origin": "node-peer", "seq": 41, "hlc": 7, **changes})
    return Replica(memory, made.embedding, "key.signature")


def _erased(replica: Replica, hlc: int) -> Replica:
    gone = replica.memory.model_copy(
        update={"tombstone": True, "content": "", "tags": [], "hlc": hlc, "invalid_at": NOW}
    )
    return Replica(gone, None, "key.erasure")


async def test_pulled_records_are_applied_once_with_their_ids_and_the_cursor_moves(
    store: MemoryStore, fake_embedder: FakeEmbedder
) -> None:
    assert await store.federation_cursor("node-peer") == 0
    first, second = (
        _pulled(fake_embedder, "the office moved to floor 3"),
        _pulled(fake_embedder, "deploys on friday"),
    )
    assert await store.apply_federated("node-peer", [first, second], cursor=17) == 2
    assert await store.federation_cursor("node-peer") == 17
    assert await store.apply_federated("node-peer", [first], cursor=18) == 0  # already here
    here = await store.get(first.memory.id, ALL)
    assert here is not None
    assert (here.origin, here.hlc, here.content) == ("node-peer", 7, first.memory.content)
    hits = await store.vector_candidates(first.vector, ALL, Filters(), NOW, 1)  # type: ignore[arg-type]
    assert [h.id for h in hits] == [first.memory.id]
    feed = await store.federated_changes(0, 10)  # served on to other peers, with a local sequence
    assert [(r.memory.id, r.seal) for r in feed] == [
        (first.memory.id, "key.signature"),
        (second.memory.id, "key.signature"),
    ]
    # The same content from two nodes stays two records: every node must hold the same ids.
    twin = _pulled(fake_embedder, "deploys on friday")
    assert await store.apply_federated("node-other", [twin], cursor=1) == 1


async def test_a_pulled_tombstone_erases_and_an_older_one_does_not(
    store: MemoryStore, fake_embedder: FakeEmbedder
) -> None:
    alive = _pulled(fake_embedder, "a fact to forget", hlc=10)
    await store.apply_federated("node-peer", [alive], cursor=1)
    assert await store.apply_federated("node-peer", [_erased(alive, 9)], cursor=2) == 0
    assert await store.get(alive.memory.id, ALL) is not None
    assert await store.apply_federated("node-peer", [_erased(alive, 11)], cursor=3) == 1
    assert await store.get(alive.memory.id, ALL) is None
    assert await store.text_candidates(["forget"], ALL, Filters(), NOW, 5) == []
    (tombstone,) = await store.federated_changes(0, 10)
    assert (tombstone.memory.tombstone, tombstone.seal) == (True, "key.erasure")


async def test_a_peer_can_neither_send_other_zones_nor_touch_this_nodes_own_memories(
    store: MemoryStore, fake_embedder: FakeEmbedder
) -> None:
    for zone in (Zone.PRIVATE, Zone.SHARED):
        smuggled = _pulled(fake_embedder, "not for peers", zone=zone)
        with pytest.raises(ValueError, match="federated"):
            await store.apply_federated("node-peer", [smuggled], cursor=1)
    sealed = _pulled(fake_embedder, "ciphertext", encrypted=True)
    with pytest.raises(ValueError, match="federated"):
        await store.apply_federated("node-peer", [sealed], cursor=1)
    assert await store.federation_cursor("node-peer") == 0  # nothing applied, not even the cursor
    (mine,) = await put(store, record(fake_embedder, "my private note", zone=Zone.PRIVATE))
    forged = _pulled(fake_embedder, "", id=mine.id, tombstone=True, hlc=10**9)
    assert await store.apply_federated("node-peer", [forged], cursor=5) == 0
    kept = await store.get(mine.id, ALL)
    assert kept is not None and kept.content == "my private note"


async def test_peers_added_at_run_time_and_pauses_are_kept(store: MemoryStore) -> None:
    garage = StoredPeer("node-garage", "a2V5", "https://garage.example:3099", NOW)
    await store.put_peer(garage)
    await store.put_peer(StoredPeer("node-attic", "a2V5", "http://attic:3099", NOW))
    moved = StoredPeer("node-garage", "a2V5", "https://garage.example:4000", NOW)
    await store.put_peer(moved)  # the same id again: its address changes
    assert [(p.id, p.url) for p in await store.stored_peers()] == [
        ("node-attic", "http://attic:3099"),
        ("node-garage", "https://garage.example:4000"),
    ]
    await store.apply_federated("node-garage", [], cursor=9)
    await store.apply_federated("node-garage", [], cursor=None)  # a repair leaves the cursor
    assert await store.federation_cursor("node-garage") == 9
    assert await store.remove_peer("node-garage")
    assert not await store.remove_peer("node-garage")
    assert await store.federation_cursor("node-garage") == 0  # a peer added again reads from the start
    assert await store.paused() == set()
    assert await store.set_paused(ALL_PEERS, True)
    assert not await store.set_paused(ALL_PEERS, True)
    assert await store.set_paused("node-attic", True)
    assert await store.paused() == {ALL_PEERS, "node-attic"}
    assert await store.set_paused(ALL_PEERS, False)
    assert await store.paused() == {"node-attic"}


def _version(embedder: FakeEmbedder, content: str, supersedes: str, hlc: int, origin: str) -> Replica:
    made = _pulled(embedder, content, supersedes=supersedes, hlc=hlc, origin=origin)
    return made


async def _current(store: MemoryStore, ids: list[str]) -> set[str]:
    """Which of these records are current (not superseded, not erased)."""
    out = set()
    for memory_id in ids:
        memory = await store.get(memory_id, ALL)
        if memory is not None and memory.invalid_at is None:
            out.add(memory_id)
    return out


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
async def test_concurrent_versions_resolve_to_the_latest_whatever_the_order(
    store: MemoryStore, fake_embedder: FakeEmbedder, order: tuple[int, ...]
) -> None:
    """Two nodes edit the same record while apart: the version with the greater (clock, origin)
    is current everywhere, and the other stays reachable as superseded."""
    base = _pulled(fake_embedder, "the deploy window is tuesday", hlc=5)
    garage = _version(fake_embedder, "the deploy window is wednesday", base.memory.id, 20, "node-garage")
    attic = _version(fake_embedder, "the deploy window is thursday", base.memory.id, 20, "node-attic")
    later = _version(fake_embedder, "the deploy window is friday", garage.memory.id, 30, "node-garage")
    records = [base, garage, attic, later]
    for i in order:
        await store.apply_federated("node-peer", [records[i]], cursor=None)
    ids = [r.memory.id for r in records]
    # garage beats attic on the same clock (by origin); later supersedes garage.
    assert await _current(store, ids) == {later.memory.id}
    superseded = await store.get(attic.memory.id, ALL)
    assert superseded is not None and superseded.invalid_at is not None


async def test_an_erased_version_still_wins_and_a_peer_cannot_mark_a_record_superseded(
    store: MemoryStore, fake_embedder: FakeEmbedder
) -> None:
    base = _pulled(fake_embedder, "the office is on floor 2", hlc=5)
    first = _version(fake_embedder, "the office is on floor 3", base.memory.id, 20, "node-attic")
    second = _version(fake_embedder, "the office is on floor 4", base.memory.id, 21, "node-garage")
    await store.apply_federated("node-peer", [base, first], cursor=None)
    await store.apply_federated("node-peer", [_erased(second, 40)], cursor=None)  # never seen alive
    assert await _current(store, [base.memory.id, first.memory.id, second.memory.id]) == set()
    # A peer's say that a record is superseded is not taken: it is derived from the records.
    claim = _pulled(fake_embedder, "a fact nobody replaced", hlc=5)
    claimed = Replica(claim.memory.model_copy(update={"invalid_at": NOW}), claim.vector, claim.seal)
    await store.apply_federated("node-peer", [claimed], cursor=None)
    assert await _current(store, [claim.memory.id]) == {claim.memory.id}


async def test_reconciliation_reads_items_and_records_and_a_resync_drops_a_peers_own(
    store: MemoryStore, fake_embedder: FakeEmbedder
) -> None:
    (mine,) = await put(store, record(fake_embedder, "a fact of this node", zone=Zone.FEDERATED))
    await put(store, record(fake_embedder, "private", zone=Zone.PRIVATE))
    theirs = _pulled(fake_embedder, "a fact of the peer", tags=["infra"])
    relayed = _pulled(fake_embedder, "a fact of a third node", origin="node-third")
    await store.apply_federated("node-peer", [theirs, relayed], cursor=None)
    items = await store.federated_items(0)
    assert [(i.id, i.origin, i.signed, i.tombstone) for i in items] == [
        (mine.id, mine.origin, False, False),
        (theirs.memory.id, "node-peer", True, False),
        (relayed.memory.id, "node-third", True, False),
    ]
    assert items[1].tags == ("infra",)
    assert await store.federated_items(items[-1].seq) == []
    assert await store.federated_count() == 3
    got = await store.federated_records([relayed.memory.id, "no-such-id", mine.id])
    assert [r.memory.id for r in got] == [mine.id, relayed.memory.id]
    # Only the named origin's records go, and only federated ones.
    assert await store.drop_federated("node-peer", [theirs.memory.id, relayed.memory.id, mine.id]) == 1
    assert await store.federated_count() == 2


async def test_purging_federated_tombstones_moves_the_horizon(
    store: MemoryStore, fake_embedder: FakeEmbedder
) -> None:
    assert await store.federation_horizon() == 0
    (gone, kept) = await put(
        store,
        record(fake_embedder, "to forget", zone=Zone.FEDERATED),
        record(fake_embedder, "to keep", zone=Zone.FEDERATED),
    )
    await store.tombstone([gone.id], hlc=50, at=NOW)
    (tombstone,) = await store.federated_changes(kept.seq, 10)
    assert await store.purge_tombstones(NOW + timedelta(days=1)) == 1
    assert await store.federation_horizon() == tombstone.memory.seq


async def test_the_latest_stamp_covers_every_record_and_tombstone(
    store: MemoryStore, fake_embedder: FakeEmbedder
) -> None:
    assert await store.latest_stamp() == 0
    await store.apply_federated("node-peer", [_pulled(fake_embedder, "stamped far ahead", hlc=900)], None)
    (mine,) = await put(store, record(fake_embedder, "stamped now", zone=Zone.PRIVATE))
    assert await store.latest_stamp() == max(900, mine.hlc)
    await store.tombstone([mine.id], hlc=mine.hlc + 5000, at=NOW)
    assert await store.latest_stamp() == mine.hlc + 5000


async def test_what_was_witnessed_of_each_peer_is_kept(store: MemoryStore) -> None:
    assert await store.witnessed() == []
    head = TreeHead(12, b"r" * 32, NOW, b"s" * 64)
    await store.put_witnessed(Witnessed("node-garage", head, NOW))
    later = TreeHead(20, b"t" * 32, NOW + timedelta(minutes=1), b"u" * 64)
    flagged = Witnessed("node-garage", head, NOW + timedelta(minutes=2), "forked", '{"heads": []}')
    await store.put_witnessed(Witnessed("node-attic", later, NOW))
    await store.put_witnessed(flagged)
    assert await store.witnessed() == [Witnessed("node-attic", later, NOW), flagged]
