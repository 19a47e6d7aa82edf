"""Memories: the records, their embeddings and full-text entries, and the reads search is built from."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from noosphere.memory.model import Filters, Memory

Vector = NDArray[np.float32]


@dataclass(frozen=True)
class Viewer:
    """Whose eyes a read goes through. ``principal_id=None`` sees every zone of every owner (the
    node admin); anyone else sees their own private memories plus shared and federated ones."""

    principal_id: str | None

    def sees(self, memory: Memory, now: datetime) -> bool:
        """The visibility rule: not forgotten, not expired, and private only to its owner. The
        SQL both backends use (``store/conditions.py``) and the vector index's mask say the same;
        the contract suite checks every read path against this."""
        if memory.tombstone or (memory.expires_at is not None and memory.expires_at <= now):
            return False
        return (
            self.principal_id is None or memory.zone.value != "private" or memory.owner == self.principal_id
        )


@dataclass(frozen=True)
class NewRecord:
    memory: Memory  # seq is assigned by the store; the value passed in is ignored
    embedding: Vector | None
    index_text: str | None  # what full-text search indexes (None: not indexed, e.g. ciphertext)


@dataclass(frozen=True)
class Candidate:
    id: str
    score: float
    valid_at: datetime | None = None  # set by vector_candidates (the recency nudge needs it)


@dataclass(frozen=True)
class EmbedderInfo:
    model_id: str
    dimension: int


class Memories(Protocol):
    """Every method is one transaction."""

    async def embedder_info(self) -> EmbedderInfo | None: ...

    async def set_embedder_info(self, info: EmbedderInfo) -> None: ...

    async def index_format(self) -> str | None:
        """What built the full-text entries (``MemoryService.index_format``); None if unrecorded."""

    async def set_index_format(self, value: str) -> None: ...

    async def write(
        self, records: Sequence[NewRecord], invalidate: Sequence[tuple[str, datetime]]
    ) -> list[Memory]:
        """Insert ``records`` and mark ``invalidate`` (id, invalid_at) in one transaction.

        Each new record gets the next sequence number (the node's change feed). A record whose
        (owner, zone, content_hash) matches a live memory is not inserted: the existing memory is
        returned in its place."""

    async def delete(self, ids: Sequence[str]) -> int:
        """Delete rows for good: row, full-text entry and vector, with no copy kept."""

    async def tombstone(self, ids: Sequence[str], hlc: int, at: datetime) -> int:
        """Erase content and embedding but keep id and version, so the deletion can replicate."""

    async def delete_owner(self, owner: str) -> int:
        """Delete every memory of ``owner`` (GDPR erasure)."""

    async def purge_expired(self, now: datetime) -> int: ...

    async def purge_tombstones(self, before: datetime) -> int: ...

    async def set_embeddings(self, items: Sequence[tuple[str, Vector]], model_id: str) -> None: ...

    async def get(self, memory_id: str, viewer: Viewer) -> Memory | None: ...

    async def fetch(
        self, ids: Sequence[str], viewer: Viewer, filters: Filters, now: datetime
    ) -> list[Memory]:
        """The live memories among ``ids`` that ``viewer`` may see and that pass ``filters``."""

    async def list_memories(
        self, viewer: Viewer, filters: Filters, now: datetime, limit: int, after_seq: int | None
    ) -> list[Memory]:
        """Live memories in sequence order."""

    async def vector_candidates(
        self, vector: Vector, viewer: Viewer, filters: Filters, now: datetime, k: int, centred: bool = False
    ) -> list[Candidate]:
        """Up to ``k`` visible live memories nearest to ``vector`` (cosine similarity). With
        ``centred``, nearest by cosine from the centre of the collections searched, among the
        ``RESCORE_DEPTH``·k nearest by plain cosine (``store/vector_centre.py``); the centre may
        lag other processes' writes until the store grows by a tenth."""

    async def similar_candidates(
        self,
        memory_id: str,
        among: Sequence[str],
        viewer: Viewer,
        filters: Filters,
        now: datetime,
        centred: bool = False,
    ) -> list[Candidate]:
        """The memories of ``among`` that ``viewer`` may see under ``filters``, nearest to
        ``memory_id``'s vector first (cosine; with ``centred``, from the centre of the collections
        searched, as ``vector_candidates``). Empty when ``memory_id`` has no vector."""

    async def text_candidates(
        self, terms: Sequence[str], viewer: Viewer, filters: Filters, now: datetime, k: int
    ) -> list[Candidate]:
        """Up to ``k`` visible live memories matching any of ``terms`` by BM25 (higher = better)."""

    async def expired_turns(self, now: datetime, limit: int) -> list[Memory]:
        """Expired, unencrypted thread memories not purged yet (their neighbours hold their text)."""

    async def thread_after(self, thread_id: str, owner: str, after_hlc: int, turns: int) -> list[Memory]:
        """The owner's next ``turns`` live, unencrypted memories of the thread after ``after_hlc``,
        oldest first: the turns whose full-text entry includes the one at ``after_hlc``."""

    async def rarest_term_count(self, terms: Sequence[str]) -> int | None:
        """How many memories hold the rarest of ``terms`` that any memory holds (None: no term is
        held); counts may be cached, and are exact at least up to a few thousand."""

    async def successors(self, memory_id: str, viewer: Viewer) -> list[Memory]:
        """The memories ``viewer`` may see that supersede ``memory_id`` (its newer versions; two
        nodes may each have written one), oldest first."""

    async def reindex(self, texts: Sequence[tuple[str, str | None]], erase_traces: bool = True) -> None:
        """Replace what full-text search indexes for these memories (id, new index text). With
        ``erase_traces``, the old entries' terms are also purged from the index's pages on disk
        (what forgetting needs; a rebuild of every entry does not)."""

    async def thread_context(self, thread_id: str, owner: str, before_hlc: int, turns: int) -> list[Memory]:
        """The ``turns`` latest plaintext memories of ``owner`` in a thread, created before
        ``before_hlc``, oldest first."""

    async def changes_since(self, seq: int, limit: int) -> list[Memory]:
        """Records (tombstones included) with a sequence number above ``seq``, in order."""

    def scan(self, batch: int) -> AsyncIterator[list[tuple[Memory, Vector | None]]]:
        """Every record with its embedding, in batches ordered by id (export, re-embedding)."""
        ...

    async def count(self) -> int: ...

    async def latest_stamp(self) -> int:
        """The greatest clock (``hlc``) of any record, tombstones included (0: none)."""
        ...
