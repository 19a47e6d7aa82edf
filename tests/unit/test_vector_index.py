from __future__ import annotations

import numpy as np
import pytest

from noosphere.store.vector_centre import CENTRE_PRIOR, RESCORE_DEPTH, centred_cosines
from noosphere.store.vector_index import ExactVectorIndex, IndexQuery, IndexRow


def _row(
    rowid: int, vector: np.ndarray | None, zone: str = "shared", owner: str = "agent:a", **kw: object
) -> IndexRow:
    fields: dict[str, object] = {"kind": "fact", "valid_at": 0.0, "expires_at": None, "live": True} | kw
    return IndexRow(rowid=rowid, memory_id=f"m{rowid}", vector=vector, zone=zone, owner=owner, **fields)  # type: ignore[arg-type]


def _query(**kw: object) -> IndexQuery:
    fields: dict[str, object] = {
        "viewer": None,
        "zones": None,
        "kinds": None,
        "owner": None,
        "since": None,
        "until": None,
        "include_invalid": False,
        "now": 100.0,
    } | kw
    return IndexQuery(**fields)  # type: ignore[arg-type]


@pytest.fixture
def vectors() -> np.ndarray:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3000, 16)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_search_is_exact_through_growth_and_compaction(vectors: np.ndarray) -> None:
    index = ExactVectorIndex(16, capacity=4)
    index.apply(_row(i, vectors[i]) for i in range(len(vectors)))
    index.remove(range(0, 3000, 2))  # drop half: the next insert compacts
    index.apply([_row(5000, vectors[0])])
    assert len(index) == 1501
    alive = list(range(1, 3000, 2))
    q = vectors[7]
    expected = sorted([*alive, 5000], key=lambda r: -float(vectors[0 if r == 5000 else r] @ q))[:5]
    assert [r for r, _, _ in index.search(q, _query(), 5)] == expected


@pytest.mark.parametrize(
    ("query", "visible"),
    [
        (_query(), {1, 2, 3, 4}),
        (_query(viewer="agent:b"), {1, 3, 4}),  # 2 is agent:a's private memory
        (_query(viewer="agent:a"), {1, 2, 3, 4}),
        (_query(zones=["private"]), {2}),
        (_query(kinds=["error"]), {3}),
        (_query(owner="agent:b"), {4}),
        (_query(since=10.0), {3, 4}),
        (_query(until=10.0), {1, 2}),
        (_query(now=1000.0), {1, 2, 3}),  # 4 expired
        (_query(include_invalid=True), {1, 2, 3, 4, 5}),
        (_query(allowed_rowids=np.array([1, 3], dtype=np.int64)), {1, 3}),
    ],
)
def test_masks_apply_every_filter(vectors: np.ndarray, query: IndexQuery, visible: set[int]) -> None:
    index = ExactVectorIndex(16)
    index.apply(
        [
            _row(1, vectors[1]),
            _row(2, vectors[2], zone="private"),
            _row(3, vectors[3], kind="error", valid_at=20.0),
            _row(4, vectors[4], owner="agent:b", valid_at=30.0, expires_at=500.0),
            _row(5, vectors[5], live=False),
            _row(6, None),  # no vector: never indexed
        ]
    )
    assert {r for r, _, _ in index.search(vectors[1], query, 10)} == visible


def test_an_update_without_vector_removes_the_entry(vectors: np.ndarray) -> None:
    index = ExactVectorIndex(16)
    index.apply([_row(1, vectors[1])])
    index.apply([_row(1, None)])
    assert index.search(vectors[1], _query(), 5) == []


def test_collection_sums_follow_inserts_updates_moves_and_removals(vectors: np.ndarray) -> None:
    index = ExactVectorIndex(16, capacity=4)
    index.apply(_row(i, vectors[i], owner=f"agent:{i % 3}") for i in range(300))
    index.apply([_row(1, vectors[500], owner="agent:1")])  # a new vector for the same memory
    index.apply([_row(2, vectors[2], owner="agent:0", zone="private")])  # moved to another collection
    index.apply([_row(4, None)])  # tombstoned: no vector
    index.remove(range(200, 300))  # deleted
    rows = {i: (vectors[i], f"agent:{i % 3}", "shared") for i in range(200) if i != 4}
    rows[1] = (vectors[500], "agent:1", "shared")
    rows[2] = (vectors[2], "agent:0", "private")
    for viewer, owner in [(None, None), ("agent:0", None), ("agent:1", None), (None, "agent:2")]:
        covered = [
            v
            for v, who, zone in rows.values()
            if (viewer is None or zone != "private" or who == viewer) and owner in (None, who)
        ]
        expected = np.sum(covered, axis=0) / (len(covered) + CENTRE_PRIOR)
        np.testing.assert_allclose(index.sums.centre(viewer, None, owner), expected, atol=1e-5)


def test_centred_search_ranks_the_plain_nearest_by_cosine_from_the_centre(vectors: np.ndarray) -> None:
    shifted = vectors[:400] + 2 * vectors[999]  # one direction every memory shares
    shifted /= np.linalg.norm(shifted, axis=1, keepdims=True)
    index = ExactVectorIndex(16)
    index.apply(_row(i, shifted[i]) for i in range(400))
    q = shifted[0]
    centre = shifted.sum(axis=0) / (400 + CENTRE_PRIOR)
    plain_nearest = np.argsort(-(shifted @ q))[: 5 * RESCORE_DEPTH]
    expected = sorted(plain_nearest, key=lambda i: -float(centred_cosines(shifted[[i]], q, centre)[0]))[:5]
    assert [r for r, _, _ in index.search(q, _query(), 5, centred=True)] == [int(i) for i in expected]
    assert [r for r, _, _ in index.search(q, _query(), 5)] != [int(i) for i in expected]


def test_similar_finds_entries_by_memory_id_through_compaction_and_reused_row_numbers(
    vectors: np.ndarray,
) -> None:
    index = ExactVectorIndex(16, capacity=4)
    index.apply(_row(i, vectors[i]) for i in range(100))
    index.remove(range(0, 100, 2))
    index.apply([_row(200, vectors[200])])  # the next insert compacts
    reused = _row(1, vectors[300])
    index.apply([IndexRow(**{**reused.__dict__, "memory_id": "new"})])  # row 1 now holds another memory
    got = index.similar("m3", ["m1", "new", "m5", "m2", "m200", "nope"], _query(), centred=False)
    expected = sorted(
        [("new", 300), ("m5", 5), ("m200", 200)], key=lambda p: -float(vectors[p[1]] @ vectors[3])
    )
    assert [i for i, _ in got] == [i for i, _ in expected]  # not m1 (gone), m2 (removed) or nope
    assert index.similar("m2", ["m3"], _query(), centred=False) == []  # no entry, no source
    hidden = index.similar("m3", ["m5"], _query(viewer="agent:b", zones=["private"]), centred=False)
    assert hidden == []  # the source is not visible through this query
