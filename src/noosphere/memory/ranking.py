"""Search ranking as pure functions: rank fusion and the recency nudge."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

RRF_K = 60
# The recency nudge multiplies a fused score by at most (1 + RECENCY_WEIGHT): a fresh memory can
# only overtake an older one whose relevance is within that margin, so a strong match never sinks.
RECENCY_WEIGHT = 0.05
_TERM = re.compile(r"\w+", re.UNICODE)
MAX_TERMS = 32


def query_terms(text: str) -> list[str]:
    """Words of a query for full-text search: lowercased, de-duplicated, order kept."""
    seen: dict[str, None] = {}
    for match in _TERM.finditer(text.lower()):
        seen.setdefault(match.group(0), None)
        if len(seen) == MAX_TERMS:
            break
    return list(seen)


def reciprocal_rank_fusion(rankings: Sequence[Sequence[str]], k: int = RRF_K) -> dict[str, float]:
    """RRF (Cormack et al. 2009): each list adds 1 / (k + rank) for the ids it holds."""
    fused: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank)
    return fused


def recency_factor(age_seconds: float, half_life_seconds: float) -> float:
    """1 + RECENCY_WEIGHT for a memory written now, decaying by half every half-life."""
    age = max(0.0, age_seconds)
    return 1.0 + RECENCY_WEIGHT * math.pow(0.5, age / half_life_seconds)
