"""What federation reads, on every backend: the federated zone and nothing else. Private and
shared memories, and anything encrypted, cannot come out of the view peers are served from."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from noosphere.memory.model import Zone
from noosphere.store.contract import MemoryStore
from noosphere.testing import FakeEmbedder
from tests.contract.test_memories_contract import NOW, put, record


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
