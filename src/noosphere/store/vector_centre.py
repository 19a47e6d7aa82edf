"""Centring: cosine similarity measured from the middle of the memories searched, not from the origin.

Sentence embeddings of one person's memories crowd into a narrow cone: the turns of a conversation
share their speakers, their style and their topics. Inside that cone a few memories (short, generic
turns) sit close to everything and come up for every question: "hubs". Subtracting the mean of the
searched memories from the query and from each memory before taking the cosine removes what they
all share and leaves what tells them apart (a standard remedy for hubness). On the long-conversation
evaluation it lifts vector recall@10 from 0.685 to 0.767 and hybrid recall@10 from 0.743 to 0.813
(docs/benchmarks.md); a mean over the whole store instead of the searched collections gives less
than half of that.

A *collection* is one owner's memories of one zone. A search covers the collections its viewer may
see that its ``owner`` and ``zones`` filters keep; kinds, times and tags do not narrow the centre,
which describes the memories, not the question. Stores keep a sum and a count per collection
(``VectorSums``): SQLite's index updates them as it indexes; PostgreSQL computes them with one scan
and again once the store has grown by a tenth (a mean of many barely moves with a few writes).

Both backends rank by plain cosine first and re-rank the ``RESCORE_DEPTH``·k nearest by centred
cosine: that gives the same top k as centring every memory and lets PostgreSQL keep using its
HNSW index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

# A few memories are not a collection: their mean is mostly one of them. The centre is their sum
# over (count + CENTRE_PRIOR), so it moves towards the true mean as the collection grows, and a
# memory never coincides with it (the centre's length stays below one).
CENTRE_PRIOR = 10
# Centred scores re-rank the RESCORE_DEPTH * k nearest by plain cosine. On the long-conversation
# evaluation, 2k gave exactly the answers of centring every memory (k lost 0.006 of recall); on
# 100k memories of one collection (the search benchmark's corpus) k already did. Deeper costs
# PostgreSQL's HNSW scan more than its default ef_search.
RESCORE_DEPTH = 2


class VectorSums:
    """Running sum and count of the embeddings of each (owner, zone) collection."""

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self._sums: dict[tuple[str, str], NDArray[np.float64]] = {}
        self._counts: dict[tuple[str, str], int] = {}
        # Centres already summed, until the next change: a node with many principals has many
        # collections, and a search should not add them all up again.
        self._centres: dict[tuple[str | None, tuple[str, ...] | None, str | None], NDArray[np.float32]] = {}

    def add(self, owner: str, zone: str, vector: NDArray[np.float32], sign: int = 1) -> None:
        """Count ``vector`` in (``sign=1``) or out of (``sign=-1``) its collection."""
        self._centres.clear()
        key = (owner, zone)
        total = self._sums.get(key)
        if total is None:
            total = self._sums[key] = np.zeros(self.dimension, dtype=np.float64)
        total += sign * vector.astype(np.float64)
        count = self._counts.get(key, 0) + sign
        if count > 0:
            self._counts[key] = count
        else:
            del self._sums[key], self._counts[key]

    def set(self, owner: str, zone: str, total: NDArray[np.floating[Any]], count: int) -> None:
        """One collection's sum and count as a store computed them."""
        self._centres.clear()
        if count > 0:
            self._sums[(owner, zone)] = total.astype(np.float64)
            self._counts[(owner, zone)] = count

    def centre(
        self, viewer: str | None, zones: Sequence[str] | None, owner: str | None
    ) -> NDArray[np.float32]:
        """The centre of the collections a search by ``viewer`` (None: the admin, who sees every
        zone of every owner) covers under the ``zones`` and ``owner`` filters."""
        key = (viewer, None if zones is None else tuple(sorted(zones)), owner)
        known = self._centres.get(key)
        if known is None:
            known = self._centres[key] = self._sum_up(viewer, zones, owner)
        return known

    def _sum_up(
        self, viewer: str | None, zones: Sequence[str] | None, owner: str | None
    ) -> NDArray[np.float32]:
        total = np.zeros(self.dimension, dtype=np.float64)
        count = 0
        for (who, zone), part in self._sums.items():
            if viewer is not None and zone == "private" and who != viewer:
                continue
            if (zones is not None and zone not in zones) or (owner is not None and who != owner):
                continue
            total += part
            count += self._counts[(who, zone)]
        return (total / (count + CENTRE_PRIOR)).astype(np.float32)


def centred_cosines(
    vectors: NDArray[np.float32], query: NDArray[np.float32], centre: NDArray[np.float32]
) -> NDArray[np.float32]:
    """Cosine similarity of each row of ``vectors`` to ``query``, both less ``centre``."""
    rows = vectors - centre
    ask = query - centre
    norms = np.linalg.norm(rows, axis=1) * float(np.linalg.norm(ask))
    result: NDArray[np.float32] = (rows @ ask) / np.maximum(norms, np.float32(1e-12))
    return result
