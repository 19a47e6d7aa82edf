"""Search ranking as pure functions: rank fusion, the recency nudge and rare-term pruning (the
query terms themselves come from ``analyzer.py``).

Hybrid ranking: the vector list is ordered by cosine similarity plus a small recency bonus, the
full-text list by BM25; the two are fused by reciprocal rank fusion (RRF). The bonus lives in
cosine units (at most ``RECENCY_BONUS``), so it only reorders memories whose similarity is within
that margin — typically an old and a new version of the same fact — and never buries a clearly
stronger match. (Applied after RRF instead, any multiplicative nudge above ~1.6% would let a
fresh memory jump over one ranked first by both lists, because RRF scores are flat.)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

RRF_K = 60  # fusing results of several nodes: lists of equal standing
# Fusing one node's own lists. Chosen on the tuning split of the long-conversation evaluation
# (docs/benchmarks.md): a small k lets the first few of each list stand out, and the BM25 list,
# much weaker than the vector list on questions worded away from what was said, votes a tenth
# as much; what was said on a day the question names votes twice.
HYBRID_K = 5
TEXT_WEIGHT = 0.1
DAY_WEIGHT = 2.0
# Except when a query word is rare (held by at most RARE_TERM_DOCS memories: a ticket number, a
# host name, a name said once): then what BM25 finds is what was asked for, and its list counts
# fully. Without this, identifier questions lose their exact match (docs/benchmarks.md).
RARE_TERM_DOCS = 3
RARE_TEXT_WEIGHT = 1.0
# A second hop: the candidates ordered by their similarity to the best match of the first fusion
# vote this much. An answer that takes two memories ("who taught Kwame the skill he used for a
# birthday present?") often has one that resembles the question and one that resembles the first
# (docs/benchmarks.md: multi-hop recall, chosen on the tuning split).
HOP_WEIGHT = 0.3
RECENCY_BONUS = 0.02  # cosine units, for a memory valid from right now; halves every half-life


@dataclass(frozen=True)
class VectorHit:
    id: str
    cosine: float
    age_seconds: float


def reciprocal_rank_fusion(rankings: Sequence[Sequence[str]], k: int = RRF_K) -> dict[str, float]:
    """RRF (Cormack et al. 2009): each list adds 1 / (k + rank) for the ids it holds."""
    fused: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank)
    return fused


T = TypeVar("T")


def fuse_sources(
    sources: Sequence[tuple[str, Sequence[T]]], key: Callable[[T], str]
) -> list[tuple[T, str, float]]:
    """Result lists from several nodes fused by RRF into (hit, node it came from, score), best
    first. Hits with the same ``key`` (a content hash: the same memory held by several nodes) are
    one; the first source that returned it names it."""
    fused: dict[str, float] = {}
    first: dict[str, tuple[T, str]] = {}
    for source, hits in sources:
        for rank, hit in enumerate(hits, start=1):
            k = key(hit)
            fused[k] = fused.get(k, 0.0) + 1.0 / (RRF_K + rank)
            first.setdefault(k, (hit, source))
    order = sorted(fused, key=lambda k: fused[k], reverse=True)
    return [(first[k][0], first[k][1], fused[k]) for k in order]


def recency_bonus(age_seconds: float, half_life_seconds: float) -> float:
    return RECENCY_BONUS * math.pow(0.5, max(0.0, age_seconds) / half_life_seconds)


def text_weight(rarest_term_count: int | None) -> float:
    """How much the BM25 list counts, given how many memories hold the query's rarest word."""
    rare = rarest_term_count is not None and rarest_term_count <= RARE_TERM_DOCS
    return RARE_TEXT_WEIGHT if rare else TEXT_WEIGHT


def vector_order(vector_hits: Sequence[VectorHit], half_life_seconds: float) -> list[str]:
    """The vector candidates by cosine plus the recency bonus, best first."""
    bonus = [h.cosine + recency_bonus(h.age_seconds, half_life_seconds) for h in vector_hits]
    return [vector_hits[i].id for i in sorted(range(len(vector_hits)), key=bonus.__getitem__, reverse=True)]


def fuse(
    vector_ids: Sequence[str],
    text_ids: Sequence[str],
    day_ids: Sequence[str] = (),
    text_weight: float = TEXT_WEIGHT,
    hop_ids: Sequence[str] = (),
) -> list[tuple[str, float]]:
    """Weighted RRF (``HYBRID_K``) of the vector list (weight 1), the BM25 list (``text_weight``),
    the named-day list (``DAY_WEIGHT``) and the second hop (``HOP_WEIGHT``): (id, score), best
    first."""
    fused = weighted_rrf(
        [(vector_ids, 1.0), (text_ids, text_weight), (day_ids, DAY_WEIGHT), (hop_ids, HOP_WEIGHT)],
        HYBRID_K,
    )
    return sorted(fused.items(), key=lambda item: item[1], reverse=True)


def hop_pool(best: str, *lists: Sequence[str]) -> list[str]:
    """The candidates the second hop orders by their likeness to ``best``: those of every list,
    once each, without ``best`` itself."""
    return [i for i in dict.fromkeys(i for ids in lists for i in ids) if i != best]


def hop_list(best: str, by_likeness: Sequence[str], k: int) -> list[str]:
    """The second hop's list: ``best`` first (so the hop never demotes it), then the others by
    their likeness to it, ``k`` in all."""
    return [best, *by_likeness][:k]


def weighted_rrf(rankings: Sequence[tuple[Sequence[str], float]], k: int) -> dict[str, float]:
    """RRF where each list's votes count ``weight`` times: weight / (k + rank)."""
    fused: dict[str, float] = {}
    for ranking, weight in rankings:
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + weight / (k + rank)
    return fused


POSTINGS_BUDGET = 2000


def prune_terms(document_counts: dict[str, int], budget: int = POSTINGS_BUDGET) -> list[str]:
    """The rarest terms whose document counts fit ``budget``, rarest first.

    Full-text engines score every row that matches any term of an OR query, so one very common
    word costs time in proportion to the corpus while its BM25 weight (IDF) is near zero; the
    vector side still sees the whole query. Terms that match nothing are dropped too."""
    kept: list[str] = []
    total = 0
    for term, count in sorted(document_counts.items(), key=lambda item: item[1]):
        if count == 0:
            continue
        if total + count > budget:
            break
        kept.append(term)
        total += count
    return kept
