from __future__ import annotations

import pytest

from noosphere.memory.ranking import (
    RECENCY_BONUS,
    VectorHit,
    fuse,
    fuse_sources,
    hop_list,
    hop_pool,
    prune_terms,
    recency_bonus,
    reciprocal_rank_fusion,
    vector_order,
)

DAY = 86400.0
HALF_LIFE = 30 * DAY


@pytest.mark.parametrize(
    ("rankings", "expected_order"),
    [
        ([["a", "b", "c"], ["a", "b", "c"]], ["a", "b", "c"]),
        ([["a", "b", "c"], ["c", "b"]], ["c", "b", "a"]),
        ([["x"], []], ["x"]),
        ([[], []], []),
    ],
)
def test_rrf_rewards_agreement_between_lists(rankings: list[list[str]], expected_order: list[str]) -> None:
    fused = reciprocal_rank_fusion(rankings)
    assert sorted(fused, key=lambda k: -fused[k]) == expected_order


def test_rrf_scores_follow_the_formula() -> None:
    fused = reciprocal_rank_fusion([["a", "b"], ["b"]], k=60)
    assert fused == {"a": pytest.approx(1 / 61), "b": pytest.approx(1 / 62 + 1 / 61)}


@pytest.mark.parametrize(
    ("age_days", "expected"),
    [(0, RECENCY_BONUS), (30, RECENCY_BONUS / 2), (60, RECENCY_BONUS / 4), (-5, RECENCY_BONUS)],
)
def test_recency_bonus_halves_every_half_life(age_days: float, expected: float) -> None:
    assert recency_bonus(age_days * DAY, HALF_LIFE) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("old_cosine", "new_cosine", "winner"),
    [
        (0.80, 0.70, "old"),  # clearly stronger: recency must not bury it
        (0.80, 0.79, "new"),  # near tie (e.g. two versions of a fact): the newer one first
        (0.80, 0.80 - RECENCY_BONUS - 0.001, "old"),  # just beyond the nudge's reach
    ],
)
def test_recency_only_reorders_near_ties(old_cosine: float, new_cosine: float, winner: str) -> None:
    hits = [VectorHit("old", old_cosine, 3650 * DAY), VectorHit("new", new_cosine, 0.0)]
    ranked = fuse(vector_order(hits, HALF_LIFE), [])
    assert ranked[0][0] == winner


def test_a_strong_old_match_stays_first_in_the_fused_ranking() -> None:
    hits = [VectorHit("strong", 0.85, 3650 * DAY), VectorHit("fresh", 0.6, 0.0)]
    ranked = fuse(vector_order(hits, HALF_LIFE), ["strong", "fresh"])
    assert [item for item, _ in ranked] == ["strong", "fresh"]


def test_a_keyword_only_match_still_appears() -> None:
    ranked = fuse(vector_order([VectorHit("a", 0.5, 0.0)], HALF_LIFE), ["b"])
    assert {item for item, _ in ranked} == {"a", "b"}


@pytest.mark.parametrize(
    ("counts", "budget", "kept"),
    [
        ({"rare": 3, "common": 9000, "mid": 500}, 2000, ["rare", "mid"]),
        ({"a": 1500, "b": 600}, 2000, ["b"]),  # b fits, then a would exceed the budget
        ({"everywhere": 50_000}, 2000, []),  # nothing selective: leave it to the vectors
        ({"absent": 0, "x": 5}, 2000, ["x"]),
        ({}, 2000, []),
    ],
)
def test_prune_terms_keeps_the_rarest_terms_within_the_budget(
    counts: dict[str, int], budget: int, kept: list[str]
) -> None:
    assert prune_terms(counts, budget) == kept


def test_results_of_several_nodes_fuse_by_rank_and_the_same_memory_counts_once() -> None:
    here = ["a", "b", "c"]
    peer = ["b", "d"]
    other = ["d", "a"]
    fused = fuse_sources([("home", here), ("garage", peer), ("attic", other)], key=lambda hit: hit)
    assert [(hit, source) for hit, source, _ in fused] == [
        ("a", "home"),  # ranks 1 and 2
        ("b", "home"),  # ranks 2 and 1: the first source that returned it names it
        ("d", "garage"),  # ranks 2 and 1
        ("c", "home"),
    ]
    assert fused[0][2] == 1 / 61 + 1 / 62
    assert fuse_sources([("home", [])], key=lambda hit: hit) == []


def test_the_second_hop_lifts_a_candidate_like_the_best_match_over_the_one_just_above_it() -> None:
    hits = [VectorHit(i, 0.5, 0.0) for i in ("best", "a", "b")]
    without = fuse(vector_order(hits, 86400.0), ["best"])
    assert [i for i, _ in without] == ["best", "a", "b"]
    with_hop = fuse(vector_order(hits, 86400.0), ["best"], hop_ids=hop_list("best", ["b"], 50))
    assert [i for i, _ in with_hop] == ["best", "b", "a"]


def test_the_second_hop_orders_every_candidate_once_and_keeps_the_best_match_first() -> None:
    assert hop_pool("b", ["a", "b", "c"], ["c", "d"], []) == ["a", "c", "d"]
    assert hop_list("b", ["d", "a", "c"], 3) == ["b", "d", "a"]
