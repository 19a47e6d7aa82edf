"""What federation reads, on every backend: the federated zone and nothing else. Private and
shared memories, and anything encrypted, cannot come out of the view peers are served from."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from noosphere.memory.model import Filters, Memory, Zone
from noosphere.store.contract import ALL_PEERS, MemoryStore, StoredPeer, Vector
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
    assert [m.content for m, _ in feed] == ["a fact for every peer", "another fact for every peer"]
    assert all(m.zone is Zone.FEDERATED and not m.encrypted for m, _ in feed)
    first, vector = feed[0]
    assert first.id == written[2].id
    assert vector is not None and np.allclose(vector, fake_embedder.embed(["a fact for every peer"])[0])


async def test_the_feed_pages_by_sequence_and_carries_tombstones(
    store: MemoryStore, fake_embedder: FakeEmbedder
) -> None:
    written = await put(
        store, *(record(fake_embedder, f"federated fact {n}", zone=Zone.FEDERATED) for n in range(5))
    )
    page = await store.federated_changes(0, 2)
    assert [m.id for m, _ in page] == [w.id for w in written[:2]]
    rest = await store.federated_changes(page[-1][0].seq, 100)
    assert [m.id for m, _ in rest] == [w.id for w in written[2:]]
    await store.tombstone([written[0].id], hlc=99, at=NOW)
    (deleted, vector) = (await store.federated_changes(written[-1].seq, 100))[0]
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


def _pulled(embedder: FakeEmbedder, content: str, **changes: object) -> tuple[Memory, Vector | None]:
    """A federated record as a peer's feed gives it: its own id, origin and clock."""
    made = record(embedder, content, zone=Zone.FEDERATED)
    memory = made.memory.model_copy(update={"origin": "node-peer", "seq": 41, "hlc": 7, **changes})
    return memory, made.embedding


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
    here = await store.get(first[0].id, ALL)
    assert here is not None and (here.origin, here.hlc, here.content) == ("node-peer", 7, first[0].content)
    hits = await store.vector_candidates(first[1], ALL, Filters(), NOW, 1)  # type: ignore[arg-type]
    assert [h.id for h in hits] == [first[0].id]
    feed = await store.federated_changes(0, 10)  # served on to other peers, with a local sequence
    assert [m.id for m, _ in feed] == [first[0].id, second[0].id]
    # The same content from two nodes stays two records: every node must hold the same ids.
    twin = _pulled(fake_embedder, "deploys on friday")
    assert await store.apply_federated("node-other", [twin], cursor=1) == 1


async def test_a_pulled_tombstone_erases_and_an_older_one_does_not(
    store: MemoryStore, fake_embedder: FakeEmbedder
) -> None:
    alive = _pulled(fake_embedder, "a fact to forget", hlc=10)
    await store.apply_federated("node-peer", [alive], cursor=1)
    stale = alive[0].model_copy(update={"tombstone": True, "content": "", "hlc": 9})
    assert await store.apply_federated("node-peer", [(stale, None)], cursor=2) == 0
    assert await store.get(alive[0].id, ALL) is not None
    gone = alive[0].model_copy(update={"tombstone": True, "content": "", "hlc": 11, "invalid_at": NOW})
    assert await store.apply_federated("node-peer", [(gone, None)], cursor=3) == 1
    assert await store.get(alive[0].id, ALL) is None
    assert await store.text_candidates(["forget"], ALL, Filters(), NOW, 5) == []


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
