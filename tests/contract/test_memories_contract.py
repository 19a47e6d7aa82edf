"""One suite, every backend: the storage contract that the memory service relies on."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from noosphere.memory.model import Filters, Memory, Zone
from noosphere.memory.service import content_hash
from noosphere.store.contract import MemoryStore, NewRecord, Viewer
from noosphere.store.vector_centre import CENTRE_PRIOR
from noosphere.testing import FakeEmbedder

NOW = datetime.now(UTC)
ALL = Viewer(None)


def record(
    embedder: FakeEmbedder,
    content: str,
    owner: str = "agent:a",
    zone: Zone = Zone.SHARED,
    kind: str = "fact",
    tags: list[str] | None = None,
    metadata: dict[str, object] | None = None,
    expires_at: datetime | None = None,
    thread_id: str | None = None,
    hlc: int = 1,
    valid_at: datetime | None = None,
) -> NewRecord:
    memory = Memory(
        id=uuid.uuid4().hex,
        seq=0,
        zone=zone,
        owner=owner,
        kind=kind,
        content=content,
        tags=sorted(tags or []),
        metadata=metadata or {},
        content_hash=content_hash(content),
        importance=0.5,
        created_at=NOW,
        valid_at=valid_at or NOW,
        expires_at=expires_at,
        thread_id=thread_id,
        embed_model=embedder.model_id,
        hlc=hlc,
        origin="test",
    )
    return NewRecord(memory, embedder.embed([content])[0], content)


async def put(store: MemoryStore, *records: NewRecord) -> list[Memory]:
    return await store.write(list(records), [])


async def test_write_assigns_increasing_sequence_numbers(
    store: MemoryStore, fake_embedder: FakeEmbedder
) -> None:
    stored = await put(store, record(fake_embedder, "one"), record(fake_embedder, "two"))
    assert stored[0].seq < stored[1].seq
    assert [m.content for m in await store.changes_since(0, 10)] == ["one", "two"]
    assert [m.content for m in await store.changes_since(stored[0].seq, 10)] == ["two"]


async def test_exact_duplicate_returns_the_existing_memory(
    store: MemoryStore, fake_embedder: FakeEmbedder
) -> None:
    (first,) = await put(store, record(fake_embedder, "same words"))
    (again,) = await put(store, record(fake_embedder, "same words"))
    assert again.id == first.id
    (other_zone,) = await put(store, record(fake_embedder, "same words", zone=Zone.PRIVATE))
    (other_owner,) = await put(store, record(fake_embedder, "same words", owner="agent:b"))
    assert len({first.id, other_zone.id, other_owner.id}) == 3
    assert await store.count() == 3


async def test_duplicates_inside_one_batch_collapse(store: MemoryStore, fake_embedder: FakeEmbedder) -> None:
    a, b = await put(store, record(fake_embedder, "twice"), record(fake_embedder, "twice"))
    assert a.id == b.id
    assert await store.count() == 1


async def test_invalidate_keeps_the_old_memory_out_of_default_reads(
    store: MemoryStore, fake_embedder: FakeEmbedder
) -> None:
    (old,) = await put(store, record(fake_embedder, "the office is on floor 2"))
    new = record(fake_embedder, "the office is on floor 3")
    new = NewRecord(new.memory.model_copy(update={"supersedes": old.id}), new.embedding, new.index_text)
    await store.write([new], [(old.id, NOW)])
    live = await store.list_memories(ALL, Filters(), NOW, 10, None)
    assert [m.content for m in live] == ["the office is on floor 3"]
    everything = await store.list_memories(ALL, Filters(include_invalid=True), NOW, 10, None)
    assert {m.content for m in everything} == {
        "the office is on floor 2",
        "the office is on floor 3",
    }
    kept = await store.get(old.id, ALL)
    assert kept is not None and kept.invalid_at is not None


async def test_private_memories_are_visible_only_to_their_owner(
    store: MemoryStore, fake_embedder: FakeEmbedder
) -> None:
    (secret,) = await put(
        store, record(fake_embedder, "alpha secret plan", owner="agent:a", zone=Zone.PRIVATE)
    )
    await put(store, record(fake_embedder, "alpha shared note", owner="agent:a", zone=Zone.SHARED))
    b = Viewer("agent:b")
    assert await store.get(secret.id, b) is None
    assert await store.get(secret.id, Viewer("agent:a")) is not None
    assert [m.content for m in await store.list_memories(b, Filters(), NOW, 10, None)] == [
        "alpha shared note"
    ]
    # Asking for the other owner's private zone explicitly still shows nothing.
    crafted = Filters(owner="agent:a", zones=[Zone.PRIVATE])
    assert await store.list_memories(b, crafted, NOW, 10, None) == []
    vector = fake_embedder.embed(["alpha secret plan"])[0]
    assert [c.id for c in await store.vector_candidates(vector, b, crafted, NOW, 10)] == []
    assert await store.text_candidates(["secret"], b, Filters(), NOW, 10) == []
    assert await store.fetch([secret.id], b, Filters(), NOW) == []


async def test_vector_candidates_rank_by_cosine(store: MemoryStore, fake_embedder: FakeEmbedder) -> None:
    await put(
        store,
        record(fake_embedder, "green tea every morning"),
        record(fake_embedder, "database migrations on friday"),
        record(fake_embedder, "green tea and black coffee"),
    )
    vector = fake_embedder.embed(["green tea"])[0]
    hits = await store.vector_candidates(vector, ALL, Filters(), NOW, 2)
    assert len(hits) == 2
    assert hits[0].score >= hits[1].score
    fetched = {m.id: m.content for m in await store.fetch([h.id for h in hits], ALL, Filters(), NOW)}
    assert all("green tea" in fetched[h.id] for h in hits)


def _crafted(embedder: FakeEmbedder, vector: np.ndarray, owner: str, zone: Zone) -> NewRecord:
    plain = record(embedder, uuid.uuid4().hex, owner=owner, zone=zone)
    return NewRecord(plain.memory, (vector / np.linalg.norm(vector)).astype(np.float32), plain.index_text)


def _centred_reference(
    memories: list[NewRecord], query: np.ndarray, covered: list[NewRecord]
) -> dict[str, float]:
    """Centred cosine of each memory to ``query``, from the centre of ``covered``, by hand."""
    centre = sum(r.embedding for r in covered if r.embedding is not None) / (len(covered) + CENTRE_PRIOR)
    result = {}
    for r in memories:
        assert r.embedding is not None
        row, ask = r.embedding - centre, query - centre
        result[r.memory.id] = float(row @ ask / (np.linalg.norm(row) * np.linalg.norm(ask)))
    return result


async def test_centred_vector_candidates_rank_by_cosine_from_the_centre_of_what_the_viewer_may_see(
    store: MemoryStore, fake_embedder: FakeEmbedder
) -> None:
    # Memories that share one strong direction (like one person's chat turns), so measuring from
    # their centre orders them differently than measuring from the origin.
    rng = np.random.default_rng(7)
    common = rng.normal(size=fake_embedder.dimension)

    def near_common() -> np.ndarray:
        return 3 * common + rng.normal(size=fake_embedder.dimension)

    mine = [_crafted(fake_embedder, near_common(), "agent:a", Zone.PRIVATE) for _ in range(20)]
    shared = [_crafted(fake_embedder, near_common(), "agent:b", Zone.SHARED) for _ in range(5)]
    # Another owner's private memories: invisible to agent:a, so they must not move its centre.
    hidden = [_crafted(fake_embedder, rng.normal(size=fake_embedder.dimension), "agent:b", Zone.PRIVATE)]
    await put(store, *mine, *shared, *hidden)
    query = near_common()
    query = (query / np.linalg.norm(query)).astype(np.float32)
    viewer = Viewer("agent:a")

    hits = await store.vector_candidates(query, viewer, Filters(), NOW, 25, centred=True)
    expected = _centred_reference(mine + shared, query, mine + shared)
    assert [h.id for h in hits] == sorted(expected, key=lambda i: expected[i], reverse=True)
    assert all(abs(h.score - expected[h.id]) < 1e-3 for h in hits)
    plain = await store.vector_candidates(query, viewer, Filters(), NOW, 25)
    assert [h.id for h in plain] != [h.id for h in hits]  # centring changed the order

    # The owner filter narrows the centre to that owner's collections.
    own = await store.vector_candidates(query, viewer, Filters(owner="agent:a"), NOW, 20, centred=True)
    expected = _centred_reference(mine, query, mine)
    assert [h.id for h in own] == sorted(expected, key=lambda i: expected[i], reverse=True)

    # Forgotten memories leave the centre.
    await store.delete([r.memory.id for r in shared])
    hits = await store.vector_candidates(query, viewer, Filters(), NOW, 20, centred=True)
    assert all(abs(h.score - expected[h.id]) < 1e-3 for h in hits)


async def test_similar_candidates_order_what_the_viewer_may_see_by_likeness_to_one_memory(
    store: MemoryStore, fake_embedder: FakeEmbedder
) -> None:
    rng = np.random.default_rng(3)
    common = rng.normal(size=fake_embedder.dimension)
    mine = [
        _crafted(
            fake_embedder, 3 * common + rng.normal(size=fake_embedder.dimension), "agent:a", Zone.PRIVATE
        )
        for _ in range(12)
    ]
    hidden = _crafted(fake_embedder, rng.normal(size=fake_embedder.dimension), "agent:b", Zone.PRIVATE)
    await put(store, *mine, hidden)
    source, rest = mine[0], mine[1:]
    among = [r.memory.id for r in rest] + [hidden.memory.id, "no-such-memory"]
    viewer = Viewer("agent:a")
    assert source.embedding is not None

    plain = await store.similar_candidates(source.memory.id, among, viewer, Filters(), NOW)
    expected = {r.memory.id: float(r.embedding @ source.embedding) for r in rest if r.embedding is not None}
    assert [c.id for c in plain] == sorted(expected, key=lambda i: expected[i], reverse=True)
    assert all(abs(c.score - expected[c.id]) < 1e-3 for c in plain)

    centred = await store.similar_candidates(source.memory.id, among, viewer, Filters(), NOW, centred=True)
    expected = _centred_reference(rest, source.embedding, mine)
    assert [c.id for c in centred] == sorted(expected, key=lambda i: expected[i], reverse=True)

    # Another owner's private memory is no source either.
    assert await store.similar_candidates(hidden.memory.id, among, viewer, Filters(), NOW) == []
    assert await store.similar_candidates(source.memory.id, [], viewer, Filters(), NOW) == []


async def test_text_candidates_match_any_term(store: MemoryStore, fake_embedder: FakeEmbedder) -> None:
    await put(
        store,
        record(fake_embedder, "the invoice for october is unpaid"),
        record(fake_embedder, "rivers carry sediment"),
    )
    hits = await store.text_candidates(["invoice", "nothing"], ALL, Filters(), NOW, 10)
    fetched = await store.fetch([h.id for h in hits], ALL, Filters(), NOW)
    assert [m.content for m in fetched] == ["the invoice for october is unpaid"]


@pytest.mark.parametrize("term", ['"', "'", "*", "NEAR", "OR", "(", "a:b", "\\", "--", "%", ";DROP"])
async def test_text_search_treats_query_syntax_as_plain_words(
    store: MemoryStore, fake_embedder: FakeEmbedder, term: str
) -> None:
    await put(store, record(fake_embedder, "plain note"))
    assert isinstance(await store.text_candidates([term], ALL, Filters(), NOW, 10), list)


async def test_filters_narrow_every_read(store: MemoryStore, fake_embedder: FakeEmbedder) -> None:
    old = NOW - timedelta(days=10)
    await put(
        store,
        record(
            fake_embedder,
            "deploy failed on node one",
            kind="error",
            tags=["ops", "deploy"],
            metadata={"project": "apollo", "severity": 3},
            valid_at=old,
        ),
        record(
            fake_embedder,
            "deploy succeeded on node two",
            kind="observation",
            tags=["ops"],
            metadata={"project": "apollo"},
            thread_id="t1",
        ),
        record(
            fake_embedder,
            "deploy plan approved",
            kind="decision",
            tags=["deploy"],
            metadata={"project": "zeus"},
            zone=Zone.FEDERATED,
        ),
    )
    vector = fake_embedder.embed(["deploy"])[0]
    cases: list[tuple[Filters, set[str]]] = [
        (Filters(kinds=["error"]), {"deploy failed on node one"}),
        (Filters(tags=["ops", "deploy"]), {"deploy failed on node one"}),
        (Filters(tags=["deploy"]), {"deploy failed on node one", "deploy plan approved"}),
        (
            Filters(metadata={"project": "apollo"}),
            {"deploy failed on node one", "deploy succeeded on node two"},
        ),
        (Filters(metadata={"severity": 3}), {"deploy failed on node one"}),
        (Filters(zones=[Zone.FEDERATED]), {"deploy plan approved"}),
        (
            Filters(since=NOW - timedelta(days=1)),
            {"deploy succeeded on node two", "deploy plan approved"},
        ),
        (Filters(until=NOW - timedelta(days=1)), {"deploy failed on node one"}),
        (Filters(thread_id="t1"), {"deploy succeeded on node two"}),
    ]
    for filters, expected in cases:
        listed = {m.content for m in await store.list_memories(ALL, filters, NOW, 10, None)}
        assert listed == expected, filters
        by_vector = await store.vector_candidates(vector, ALL, filters, NOW, 10)
        assert {
            m.content for m in await store.fetch([c.id for c in by_vector], ALL, filters, NOW)
        } == expected
        by_text = await store.text_candidates(["deploy"], ALL, filters, NOW, 10)
        assert {m.content for m in await store.fetch([c.id for c in by_text], ALL, filters, NOW)} == expected


async def test_expired_memories_vanish_and_are_purged(
    store: MemoryStore, fake_embedder: FakeEmbedder
) -> None:
    await put(
        store,
        record(fake_embedder, "short lived", expires_at=NOW + timedelta(seconds=5)),
        record(fake_embedder, "long lived"),
    )
    later = NOW + timedelta(seconds=10)
    assert [m.content for m in await store.list_memories(ALL, Filters(), later, 10, None)] == ["long lived"]
    vector = fake_embedder.embed(["short lived"])[0]
    hits = await store.vector_candidates(vector, ALL, Filters(), later, 10)
    assert len(hits) == 1
    assert await store.purge_expired(later) == 1
    assert await store.count() == 1


async def test_delete_removes_row_text_and_vector(store: MemoryStore, fake_embedder: FakeEmbedder) -> None:
    (gone,) = await put(store, record(fake_embedder, "zebra crossing"))
    await put(store, record(fake_embedder, "keep me"))
    assert await store.delete([gone.id]) == 1
    assert await store.get(gone.id, ALL) is None
    assert await store.text_candidates(["zebra"], ALL, Filters(), NOW, 10) == []
    vector = fake_embedder.embed(["zebra crossing"])[0]
    assert gone.id not in {c.id for c in await store.vector_candidates(vector, ALL, Filters(), NOW, 10)}


async def test_tombstones_keep_the_version_but_no_content(
    store: MemoryStore, fake_embedder: FakeEmbedder
) -> None:
    (fed,) = await put(store, record(fake_embedder, "federated fact", zone=Zone.FEDERATED))
    assert await store.tombstone([fed.id], hlc=99, at=NOW) == 1
    assert await store.get(fed.id, ALL) is None
    changes = await store.changes_since(fed.seq, 10)
    assert len(changes) == 1 and changes[0].tombstone and changes[0].content == "" and changes[0].hlc == 99
    assert await store.purge_tombstones(NOW + timedelta(seconds=1)) == 1
    assert await store.changes_since(0, 10) == []


async def test_delete_owner_erases_only_that_owner(store: MemoryStore, fake_embedder: FakeEmbedder) -> None:
    await put(
        store,
        record(fake_embedder, "a1", owner="user:ann"),
        record(fake_embedder, "a2", owner="user:ann", zone=Zone.PRIVATE),
        record(fake_embedder, "b1", owner="user:bob"),
    )
    assert await store.delete_owner("user:ann") == 2
    assert [m.content for m in await store.list_memories(ALL, Filters(), NOW, 10, None)] == ["b1"]


async def test_list_pages_by_sequence(store: MemoryStore, fake_embedder: FakeEmbedder) -> None:
    for i in range(5):
        await put(store, record(fake_embedder, f"item {i}"))
    first = await store.list_memories(ALL, Filters(), NOW, 2, None)
    second = await store.list_memories(ALL, Filters(), NOW, 2, first[-1].seq)
    assert [m.content for m in first + second] == ["item 0", "item 1", "item 2", "item 3"]


async def test_scan_yields_every_record_with_its_embedding(
    store: MemoryStore, fake_embedder: FakeEmbedder
) -> None:
    for i in range(7):
        await put(store, record(fake_embedder, f"scan {i}"))
    seen = [row async for batch in store.scan(3) for row in batch]
    assert len(seen) == 7
    for memory, vector in seen:
        assert vector is not None
        assert float(vector @ fake_embedder.embed([memory.content])[0]) == pytest.approx(1.0, abs=1e-5)


async def test_set_embeddings_replaces_vectors(store: MemoryStore, fake_embedder: FakeEmbedder) -> None:
    (m,) = await put(store, record(fake_embedder, "apples"))
    other = fake_embedder.embed(["oranges"])[0]
    await store.set_embeddings([(m.id, other)], "fake-2")
    hits = await store.vector_candidates(other, ALL, Filters(), NOW, 1)
    assert hits[0].id == m.id and hits[0].score == pytest.approx(1.0, abs=1e-5)
    got = await store.get(m.id, ALL)
    assert got is not None and got.embed_model == "fake-2"


async def test_thread_context_returns_earlier_turns_in_order(
    store: MemoryStore, fake_embedder: FakeEmbedder
) -> None:
    for i in range(4):
        await put(store, record(fake_embedder, f"turn {i}", thread_id="chat", hlc=10 + i, kind="message"))
    earlier = await store.thread_context("chat", "agent:a", 13, 2)
    assert [m.content for m in earlier] == ["turn 1", "turn 2"]
    assert await store.thread_context("chat", "agent:other", 13, 2) == []


async def test_a_write_is_all_or_nothing(store: MemoryStore, fake_embedder: FakeEmbedder) -> None:
    good = record(fake_embedder, "fine")
    bad = record(fake_embedder, "clashing id")
    bad = NewRecord(bad.memory.model_copy(update={"id": good.memory.id}), bad.embedding, bad.index_text)
    with pytest.raises(Exception):  # noqa: B017, PT011 - the backend-specific integrity error
        await store.write([good, bad], [])
    assert await store.count() == 0


ADVERSARIAL = [
    Filters(metadata={"x": None}),
    Filters(metadata={"x": None, "y": None}),
    Filters(metadata={"x": None}, include_invalid=True),
    Filters(metadata={"x": "a' OR '1'='1"}),
    Filters(tags=["secret"], metadata={"x": None}),
    Filters(owner="agent:a", zones=[Zone.PRIVATE], metadata={"x": None}),
    Filters(thread_id="t' OR 1=1 --", metadata={"x": None}),
    Filters(kinds=["fact", "x) OR (1=1"], metadata={"x": None}),
]


@pytest.mark.parametrize("filters", ADVERSARIAL)
async def test_no_filter_shows_what_the_visibility_rule_hides(
    store: MemoryStore, fake_embedder: FakeEmbedder, filters: Filters
) -> None:
    """Another agent's private, expired or forgotten memories stay hidden from every read path,
    whatever the filters (a null metadata filter once bypassed visibility on PostgreSQL)."""
    hidden = await put(
        store,
        record(
            fake_embedder,
            "secret plan x",
            owner="agent:a",
            zone=Zone.PRIVATE,
            tags=["secret"],
            metadata={"x": None},
            thread_id="t",
        ),
        record(
            fake_embedder,
            "expired plan x",
            owner="agent:b",
            zone=Zone.SHARED,
            tags=["secret"],
            metadata={"x": None},
            expires_at=NOW - timedelta(seconds=1),
        ),
    )
    (forgotten,) = await put(
        store,
        record(fake_embedder, "forgotten plan x", owner="agent:b", tags=["secret"], metadata={"x": None}),
    )
    await store.tombstone([forgotten.id], 99, NOW)
    (seen,) = await put(
        store, record(fake_embedder, "shared plan x", owner="agent:a", tags=["secret"], metadata={"x": None})
    )
    b = Viewer("agent:b")
    ids = {m.id for m in hidden} | {forgotten.id}
    vector = fake_embedder.embed(["secret plan x"])[0]
    reads = {
        "list": {m.id for m in await store.list_memories(b, filters, NOW, 50, None)},
        "vector": {c.id for c in await store.vector_candidates(vector, b, filters, NOW, 50)},
        "text": {c.id for c in await store.text_candidates(["plan", "secret"], b, filters, NOW, 50)},
        "fetch": {m.id for m in await store.fetch([*ids, seen.id], b, filters, NOW)},
        "get": {m.id for i in [*ids, seen.id] if (m := await store.get(i, b)) is not None},
    }
    for path, found in reads.items():
        assert not found & ids, f"{path} showed {found & ids}"
    every = [m for rows in [r async for r in store.scan(100)] for m, _ in rows]
    assert {m.id for m in every if b.sees(m, NOW)} == {seen.id}


async def test_thread_turns_after_one_are_found_and_reindexed(
    store: MemoryStore, fake_embedder: FakeEmbedder
) -> None:
    first, second, third = await put(
        store,
        *(
            record(fake_embedder, text, owner="agent:a", thread_id="t", hlc=hlc)
            for text, hlc in (("alpha", 1), ("bravo", 2), ("charlie", 3))
        ),
    )
    await put(store, record(fake_embedder, "delta", owner="agent:b", thread_id="t", hlc=4))
    assert [m.content for m in await store.thread_after("t", "agent:a", 1, 5)] == ["bravo", "charlie"]
    assert [m.content for m in await store.thread_after("t", "agent:a", 2, 1)] == ["charlie"]
    await store.reindex([(third.id, "zulu charlie"), (second.id, None)])
    assert [c.id for c in await store.text_candidates(["zulu"], ALL, Filters(), NOW, 10)] == [third.id]
    assert await store.text_candidates(["bravo"], ALL, Filters(), NOW, 10) == []  # out of the index
    assert [c.id for c in await store.text_candidates(["alpha"], ALL, Filters(), NOW, 10)] == [first.id]


async def test_expired_thread_turns_are_listed_until_purged(
    store: MemoryStore, fake_embedder: FakeEmbedder
) -> None:
    past = NOW - timedelta(seconds=1)
    (gone,) = await put(store, record(fake_embedder, "brief", thread_id="t", expires_at=past, hlc=1))
    await put(store, record(fake_embedder, "no thread", expires_at=past, hlc=2))
    await put(store, record(fake_embedder, "still valid", thread_id="t", hlc=3))
    assert [m.id for m in await store.expired_turns(NOW, 10)] == [gone.id]
    await store.purge_expired(NOW)
    assert await store.expired_turns(NOW, 10) == []


async def test_rare_terms_are_counted_and_reindexing_counts_again(
    store: MemoryStore, fake_embedder: FakeEmbedder
) -> None:
    await put(store, *(record(fake_embedder, f"deploy note {i}") for i in range(5)))
    (ticket,) = await put(store, record(fake_embedder, "ticket inc4471 is open"))
    assert await store.rarest_term_count(["deploy", "inc4471", "nowhere"]) == 1
    assert await store.rarest_term_count(["deploy"]) == 5
    assert await store.rarest_term_count(["nowhere"]) is None
    await store.reindex([(ticket.id, "ticket closed")], erase_traces=False)
    assert await store.rarest_term_count(["inc4471"]) is None  # the counts were not left stale
    assert await store.index_format() is None
    await store.set_index_format("snowball-en-1;context=1;dates")
    assert await store.index_format() == "snowball-en-1;context=1;dates"


async def test_successors_are_the_versions_that_supersede_a_memory(
    store: MemoryStore, fake_embedder: FakeEmbedder
) -> None:
    (old,) = await put(store, record(fake_embedder, "standup at 9:30"))
    newer = record(fake_embedder, "standup at 10:00", hlc=2)
    newer = NewRecord(
        newer.memory.model_copy(update={"supersedes": old.id}), newer.embedding, newer.index_text
    )
    (new,) = await store.write([newer], [(old.id, NOW)])
    assert [m.id for m in await store.successors(old.id, ALL)] == [new.id]
    assert await store.successors(new.id, ALL) == []
    assert [m.id for m in await store.successors(old.id, Viewer("agent:a"))] == [new.id]
