"""Search ranking as pure functions: query terms, rank fusion and the recency nudge.

Hybrid ranking: the vector list is ordered by cosine similarity plus a small recency bonus, the
full-text list by BM25; the two are fused by reciprocal rank fusion (RRF). The bonus lives in
cosine units (at most ``RECENCY_BONUS``), so it only reorders memories whose similarity is within
that margin — typically an old and a new version of the same fact — and never buries a clearly
stronger match. (Applied after RRF instead, any multiplicative nudge above ~1.6% would let a
fresh memory jump over one ranked first by both lists, because RRF scores are flat.)
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

RRF_K = 60
RECENCY_BONUS = 0.02  # cosine units, for a memory valid from right now; halves every half-life
_TERM = re.compile(r"\w+", re.UNICODE)
MAX_TERMS = 32


@dataclass(frozen=True)
class VectorHit:
    id: str
    cosine: float
    age_seconds: float


# Function words that every chat line contains. Left in an OR query they flood the BM25 list with
# look-alike matches that RRF then credits like real ones (docs/benchmarks.md, retrieval: the
# "function words kept" row).
_STOPWORD_LIST = """
a an and are as at be been but by can could did do does for from get got had has have he her him
his how i if in into is it its me my of on or our she should so than that the their them then there
these they this those to was we were what when where which who whom why will with would you your
"""
STOPWORDS = frozenset(_STOPWORD_LIST.split())


def query_terms(text: str, drop_function_words: bool = True) -> list[str]:
    """Words of a query for full-text search: lowercased, de-duplicated, order kept, function
    words dropped (unless the query has nothing else)."""
    words = list(dict.fromkeys(m.group(0) for m in _TERM.finditer(text.lower())))
    content = [w for w in words if w not in STOPWORDS] if drop_function_words else words
    return (content or words)[:MAX_TERMS]


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


def hybrid_rank(
    vector_hits: Sequence[VectorHit], text_ids: Sequence[str], half_life_seconds: float
) -> list[tuple[str, float]]:
    """Fuse a vector list and a BM25 list into (id, score), best first."""
    by_vector = sorted(
        vector_hits,
        key=lambda h: h.cosine + recency_bonus(h.age_seconds, half_life_seconds),
        reverse=True,
    )
    fused = reciprocal_rank_fusion([[h.id for h in by_vector], list(text_ids)])
    return sorted(fused.items(), key=lambda item: item[1], reverse=True)


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
