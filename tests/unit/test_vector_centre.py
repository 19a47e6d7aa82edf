from __future__ import annotations

import numpy as np
import pytest

from noosphere.store.vector_centre import CENTRE_PRIOR, VectorSums, centred_cosines

E = np.eye(4, dtype=np.float32)


@pytest.fixture
def sums() -> VectorSums:
    sums = VectorSums(4)
    sums.add("user:a", "private", E[0])
    sums.add("user:a", "shared", E[1])
    sums.add("user:b", "private", E[2])
    sums.add("user:b", "federated", E[3])
    return sums


@pytest.mark.parametrize(
    ("viewer", "zones", "owner", "covered"),
    [
        (None, None, None, [0, 1, 2, 3]),  # the admin sees every collection
        ("user:a", None, None, [0, 1, 3]),  # not user:b's private memories
        ("user:b", None, None, [1, 2, 3]),
        ("user:a", ["shared", "federated"], None, [1, 3]),
        ("user:a", None, "user:a", [0, 1]),
        ("user:a", None, "user:b", [3]),
        ("user:c", ["private"], None, []),
    ],
)
def test_a_search_is_centred_on_the_collections_its_viewer_and_filters_cover(
    sums: VectorSums, viewer: str | None, zones: list[str] | None, owner: str | None, covered: list[int]
) -> None:
    expected = E[covered].sum(axis=0) / (len(covered) + CENTRE_PRIOR)
    np.testing.assert_allclose(sums.centre(viewer, zones, owner), expected)


def test_a_memory_counted_out_leaves_no_trace(sums: VectorSums) -> None:
    assert sums.centre("user:a", ["private"], None).tolist() != [0, 0, 0, 0]
    sums.add("user:a", "private", E[0], sign=-1)
    assert sums.centre("user:a", ["private"], None).tolist() == [0, 0, 0, 0]
    sums.set("user:a", "private", np.ones(4), 2)
    np.testing.assert_allclose(sums.centre("user:a", ["private"], None), np.ones(4) / (2 + CENTRE_PRIOR))


def test_centred_cosines_measure_from_the_centre() -> None:
    vectors = np.array([[1.0, 1.0], [1.0, -1.0]], dtype=np.float32)
    query = np.array([1.0, 0.5], dtype=np.float32)
    scores = centred_cosines(vectors, query, np.array([1.0, 0.0], dtype=np.float32))
    np.testing.assert_allclose(scores, [1.0, -1.0], atol=1e-6)  # (0, 1) and (0, -1) against (0, 0.5)
    assert centred_cosines(vectors, query, np.zeros(2, dtype=np.float32))[0] > 0.9  # plain cosine
