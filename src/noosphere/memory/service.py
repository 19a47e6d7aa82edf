"""The memory service: the one place that turns a principal's request into store operations.

Scope comes from the principal (its id is the owner of what it writes and the viewer of what it
reads), never from arguments. Writes are embedded, de-duplicated and stamped here; search fuses
vector and full-text candidates with reciprocal rank fusion and a bounded recency nudge.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from noosphere.auth.principal import Principal
from noosphere.clock import HybridLogicalClock
from noosphere.config import MemorySettings
from noosphere.embeddings.base import Embedder
from noosphere.errors import (
    Conflict,
    EmbedderMismatch,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
)
from noosphere.memory import crypto
from noosphere.memory.access import can_modify, check_memory_access, check_write
from noosphere.memory.analyzer import Analyzer, words
from noosphere.memory.dates import named_days
from noosphere.memory.model import (
    CONVERSATION_KIND,
    MESSAGE_KIND,
    ListQuery,
    Memory,
    MemoryDraft,
    Page,
    SearchHit,
    SearchQuery,
    Zone,
)
from noosphere.memory.ranking import (
    VectorHit,
    fuse,
    fuse_sources,
    hop_list,
    hop_pool,
    text_weight,
    vector_order,
)
from noosphere.observe import Observer, timed
from noosphere.store.contract import Candidate, EmbedderInfo, MemoryStore, NewRecord, Viewer
from noosphere.threads import Threads

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
_CANDIDATES = 50
HISTORY_MAX = 100  # versions one history returns


def content_hash(content: str) -> str:
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class GcReport:
    expired: int
    tombstones: int


class Elsewhere(Protocol):
    """Other nodes a search with ``include_federation`` also asks (federation's live peers)."""

    async def search(self, query: SearchQuery) -> list[tuple[str, list[SearchHit]]]:
        """Each answering node's id with its hits, best first; nodes that do not answer in time
        are left out."""
        ...


class MemoryService:
    subsystem = "memory"
    observer: Observer | None = None  # the node's metrics, once it runs (``observe.py``)

    def __init__(
        self,
        store: MemoryStore,
        embedder: Embedder,
        settings: MemorySettings,
        node_id: str,
        clock: HybridLogicalClock | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.settings = settings
        self.node_id = node_id
        self.analyzer = Analyzer(settings.stemming)
        self.clock = clock or HybridLogicalClock()
        # Two at a time: a long batch (an import) leaves a thread for a search's one query.
        self._embedding = Threads("embed", 2)
        self.elsewhere: Elsewhere | None = None  # federation's peers, once the node federates
        # Called when a federated memory is written or forgotten here (federation rings its peers).
        self.on_federated_change: Callable[[], None] | None = None

    async def resume_clock(self) -> None:
        """Start the clock after every stamp in the store: a node restarted (or whose wall clock
        went back) never stamps a new version, or a deletion, before one it made or took in
        earlier. A deletion stamped before its record's version would be ignored by peers."""
        self.clock.observe(await self.store.latest_stamp())

    async def check_embedder(self) -> None:
        """Bind the store to this embedder on first use; refuse a different one afterwards."""
        info = await self.store.embedder_info()
        mine = EmbedderInfo(self.embedder.model_id, self.embedder.dimension)
        if info is None:
            await self.store.set_embedder_info(mine)
        elif info != mine:
            raise EmbedderMismatch(
                f"the store holds {info.dimension}-d vectors from {info.model_id}, but the "
                f"configured embedder is {mine.model_id} ({mine.dimension}-d); run "
                "`noosphere memory reembed` to migrate, or configure the original embedder"
            )

    async def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self.embedder.dimension), dtype=np.float32)
        batch = list(texts)
        return await self._embedding.run(lambda: self.embedder.embed(batch))

    # -- writes --------------------------------------------------------------------------------
    async def store_one(self, principal: Principal, draft: MemoryDraft) -> Memory:
        return (await self.store_many(principal, [draft]))[0]

    @timed("store")
    async def store_many(self, principal: Principal, drafts: Sequence[MemoryDraft]) -> list[Memory]:
        """Store drafts in one transaction; exact duplicates return the existing memory."""
        if not drafts:
            return []
        if len(drafts) > self.settings.max_batch:
            raise PayloadTooLarge(f"at most {self.settings.max_batch} memories per batch")
        now = _now()
        invalidate: list[tuple[str, datetime]] = []
        for draft in drafts:
            self._validate(principal, draft, now)
            if draft.supersedes is not None:
                await self._check_supersede(principal, draft.supersedes)
                invalidate.append((draft.supersedes, now))

        memories = [self._new_memory(principal, d, now) for d in drafts]
        earlier = await self._earlier_turns(principal, drafts)
        index_texts = [
            None if m.encrypted else self.index_of(m, before)
            for m, before in zip(memories, earlier, strict=True)
        ]
        to_embed = [i for i, m in enumerate(memories) if not m.encrypted]
        vectors = await self.embed([self._embedded(drafts[i].content, earlier[i]) for i in to_embed])
        vector_of = dict(zip(to_embed, vectors, strict=True))
        records = []
        for i, (memory, draft) in enumerate(zip(memories, drafts, strict=True)):
            if memory.encrypted:
                assert principal.l2_key is not None
                sealed = crypto.seal(principal.l2_key, draft.content, memory.id)
                records.append(NewRecord(memory.model_copy(update={"content": sealed}), None, None))
            else:
                records.append(NewRecord(memory, vector_of[i], index_texts[i]))
        stored = await self.store.write(records, invalidate)
        if any(m.zone is Zone.FEDERATED for m in stored):
            self._federated_changed()
        return [self._reveal(principal, m) for m in stored]

    def _federated_changed(self) -> None:
        if self.on_federated_change is not None:
            self.on_federated_change()

    def _validate(self, principal: Principal, draft: MemoryDraft, now: datetime) -> None:
        check_write(principal, draft.zone)
        if len(draft.content) > self.settings.max_content_chars:
            raise PayloadTooLarge(f"content is longer than {self.settings.max_content_chars} characters")
        if not draft.content.strip():
            raise InvalidRequest("content must not be empty")
        if draft.expires_at is not None and draft.expires_at.tzinfo is None:
            raise InvalidRequest("expires_at needs a timezone (e.g. 2026-01-01T00:00:00Z)")
        if draft.kind == CONVERSATION_KIND:
            if draft.zone is not Zone.PRIVATE:
                raise InvalidRequest("conversations (L2) are private: they are encrypted for their owner")
            if principal.l2_key is None:
                raise PermissionDenied("storing a conversation needs the owner's own token (bearer auth)")

    async def _check_supersede(self, principal: Principal, memory_id: str) -> None:
        old = await self.store.get(memory_id, Viewer(None if principal.is_admin else principal.id))
        if old is None:
            raise NotFound(f"no memory {memory_id} to supersede")
        if not can_modify(principal, old.owner):
            raise PermissionDenied("only the owner of a memory may supersede it")
        if old.invalid_at is not None:
            raise InvalidRequest(f"memory {memory_id} is already superseded")

    def _new_memory(self, principal: Principal, draft: MemoryDraft, now: datetime) -> Memory:
        expires = draft.expires_at
        if expires is None and draft.kind == MESSAGE_KIND:
            expires = now + timedelta(days=self.settings.message_ttl_days)
        valid_at = draft.valid_at or now
        if valid_at.tzinfo is None:
            valid_at = valid_at.replace(tzinfo=UTC)
        encrypted = draft.kind == CONVERSATION_KIND
        memory_id = uuid.uuid4().hex
        hashed = draft.content
        if draft.thread_id is not None and draft.kind in (MESSAGE_KIND, CONVERSATION_KIND):
            # Turns of a thread are events: the same words said twice, even in one batch, are two
            # turns, so their hash never matches another's.
            hashed = f"{draft.thread_id}\n{memory_id}\n{draft.content}"
        digest = content_hash(hashed)
        if encrypted:
            assert principal.l2_key is not None  # checked in _validate
            # Keyed, so the hash of a sealed conversation cannot confirm a guessed plaintext.
            digest = crypto.keyed_hash(principal.l2_key, hashed)
        return Memory(
            id=memory_id,
            seq=0,
            zone=draft.zone,
            owner=principal.id,
            kind=draft.kind,
            content=draft.content,
            tags=draft.tags,
            metadata=dict(draft.metadata),
            content_hash=digest,
            importance=draft.importance,
            created_at=now,
            valid_at=valid_at,
            expires_at=expires,
            supersedes=draft.supersedes,
            thread_id=draft.thread_id,
            embed_model=None if encrypted else self.embedder.model_id,
            encrypted=encrypted,
            hlc=self.clock.now(),
            origin=self.node_id,
        )

    async def _earlier_turns(self, principal: Principal, drafts: Sequence[MemoryDraft]) -> list[list[str]]:
        """For each draft in a thread, the thread's turns before it (as many as indexing or
        embedding needs), those of this batch included; nothing for other drafts."""
        turns = max(self.settings.context_turns, 1 if self.settings.embed_context_words else 0)
        history: dict[str, list[str]] = {}
        found: list[list[str]] = []
        for draft in drafts:
            if draft.thread_id is None or draft.kind == CONVERSATION_KIND or turns == 0:
                found.append([])
                continue
            if draft.thread_id not in history:
                stored = await self.store.thread_context(
                    draft.thread_id, principal.id, self.clock.now(), turns
                )
                history[draft.thread_id] = [m.content for m in stored]
            found.append(history[draft.thread_id][-turns:])
            history[draft.thread_id].append(draft.content)
        return found

    def _short(self, content: str) -> bool:
        limit = self.settings.embed_context_words
        return bool(limit) and len(words(content)) < limit

    def _embedded(self, content: str, earlier: Sequence[str]) -> str:
        """What the vector embeds: the content alone, except a turn too short to mean much by
        itself ("Of course."), which is embedded after the turn it answers. Left alone, such
        turns are near every question that names their speaker, and crowd out the turns that
        answer it (docs/benchmarks.md, memory search over long conversations)."""
        if not earlier or not self._short(content):
            return content
        return f"{earlier[-1]}\n{content}"

    def index_of(self, memory: Memory, earlier: Sequence[str] = ()) -> str:
        """What full-text search indexes for ``memory`` (``analyzer.py``): its content, and for a
        thread's turn the ``memory.context_turns`` turns before it (of ``earlier``) and, with
        ``memory.index_dates``, the day it was said, since a chat line rarely stands alone."""
        if memory.thread_id is None:
            return self.analyzer.index(memory.content)
        turns = self.settings.context_turns
        before = list(earlier[-turns:]) if turns else []
        said = memory.valid_at if self.settings.index_dates else None
        return self.analyzer.index(memory.content, before, said)

    async def _stored_index_text(self, memory: Memory) -> str:
        """``index_of`` for a stored memory, its thread's earlier turns read from the store."""
        earlier: list[Memory] = []
        if memory.thread_id is not None and self.settings.context_turns:
            earlier = await self.store.thread_context(
                memory.thread_id, memory.owner, memory.hlc, self.settings.context_turns
            )
        return self.index_of(memory, [m.content for m in earlier])

    @property
    def index_format(self) -> str:
        """Names everything that shapes a full-text entry, as the store records it."""
        dates = "dates" if self.settings.index_dates else "nodates"
        return f"{self.analyzer.format};context={self.settings.context_turns};{dates}"

    async def check_index(self, progress: Progress | None = None) -> int:
        """Index every memory again if the store's full-text entries were built another way (an
        older version, other settings); the number of memories indexed again."""
        if await self.store.index_format() == self.index_format:
            return 0
        done = await self.reindex_all(progress)
        await self.store.set_index_format(self.index_format)
        return done

    async def reindex_all(self, progress: Progress | None = None, batch: int = 500) -> int:
        """Rebuild every plaintext memory's full-text entry with this node's analysis."""
        total = await self.store.count()
        done = 0
        async for rows in self.store.scan(batch):
            live = [m for m, _ in rows if not m.tombstone and not m.encrypted]
            texts = [(memory.id, await self._stored_index_text(memory)) for memory in live]
            if texts:
                await self.store.reindex(texts, erase_traces=False)
            done += len(rows)
            if progress:
                progress(done, total)
        return done

    def _reveal(self, principal: Principal, memory: Memory) -> Memory:
        """Decrypt an L2 memory for its owner; others (and key-less callers) see ciphertext, and so
        does the owner for one sealed under another credential (an older token, another API key):
        one such memory never fails the read it is part of."""
        if memory.encrypted and memory.owner == principal.id and principal.l2_key is not None:
            try:
                plain = crypto.open_sealed(principal.l2_key, memory.content, memory.id)
            except PermissionDenied:
                return memory
            return memory.model_copy(update={"content": plain})
        return memory

    # -- reads ---------------------------------------------------------------------------------
    @staticmethod
    def _viewer(principal: Principal) -> Viewer:
        check_memory_access(principal)
        return Viewer(None if principal.is_admin else principal.id)

    @timed("get")
    async def get(self, principal: Principal, memory_id: str) -> Memory:
        memory = await self.store.get(memory_id, self._viewer(principal))
        if memory is None:
            raise NotFound(f"no memory {memory_id}")
        return self._reveal(principal, memory)

    @timed("update")
    async def update(self, principal: Principal, memory_id: str, content: str) -> Memory:
        """A new version of a memory with new content and everything else kept (zone, kind,
        tags, metadata, thread, importance, expiry); it supersedes the old one, which stays
        reachable (``history``). Only the current version of one's own memory can be updated."""
        old = await self.get(principal, memory_id)
        if old.invalid_at is not None:
            current = [m for m in await self.history(principal, memory_id) if m.invalid_at is None]
            latest = f"; the current version is {current[-1].id}" if current else ""
            raise Conflict(f"memory {memory_id} is already superseded{latest}")
        if content == old.content:
            raise InvalidRequest("the content is unchanged")
        draft = MemoryDraft(
            content=content,
            zone=old.zone,
            kind=old.kind,
            tags=old.tags,
            metadata=old.metadata,
            importance=old.importance,
            thread_id=old.thread_id,
            expires_at=old.expires_at,
            supersedes=old.id,
        )
        return await self.store_one(principal, draft)

    @timed("history")
    async def history(self, principal: Principal, memory_id: str) -> list[Memory]:
        """Every version of a memory the caller may see, oldest first: the ones it superseded
        and the ones that superseded it (``HISTORY_MAX`` at most)."""
        viewer = self._viewer(principal)
        start = await self.get(principal, memory_id)
        found = {start.id: start}
        older: Memory | None = start
        while older is not None and older.supersedes and len(found) < HISTORY_MAX:
            older = await self.store.get(older.supersedes, viewer)
            if older is None or older.id in found:
                break
            found[older.id] = older
        pending = list(found)
        while pending and len(found) < HISTORY_MAX:
            for newer in await self.store.successors(pending.pop(), viewer):
                if newer.id not in found:
                    found[newer.id] = newer
                    pending.append(newer.id)
        ordered = sorted(found.values(), key=lambda m: (m.hlc, m.id))[:HISTORY_MAX]
        return [self._reveal(principal, m) for m in ordered]

    @timed("list")
    async def list_memories(self, principal: Principal, query: ListQuery) -> Page:
        items = await self.store.list_memories(
            self._viewer(principal), query, _now(), query.limit + 1, query.cursor
        )
        more = len(items) > query.limit
        items = items[: query.limit]
        return Page(
            items=[self._reveal(principal, m) for m in items],
            next_cursor=items[-1].seq if more and items else None,
        )

    @timed("search")
    async def search(self, principal: Principal, query: SearchQuery) -> list[SearchHit]:
        (vector,) = await self.embed([query.query])
        if not query.include_federation or self.elsewhere is None:
            return await self.search_with_vector(principal, query, vector)
        local, remote = await asyncio.gather(
            self.search_with_vector(principal, query, vector), self.elsewhere.search(query)
        )
        fused = fuse_sources([(self.node_id, local), *remote], key=lambda hit: hit.memory.content_hash)
        return [
            hit.model_copy(update={"score": score, "source": source})
            for hit, source, score in fused[: query.limit]
        ]

    async def search_with_vector(
        self, principal: Principal, query: SearchQuery, vector: NDArray[np.float32]
    ) -> list[SearchHit]:
        """Hybrid search with the query already embedded (what the benchmarks time)."""
        viewer, now = self._viewer(principal), _now()
        k = max(_CANDIDATES, query.limit * 5)
        centred = self.settings.centre_vectors
        by_vector = await self.store.vector_candidates(vector, viewer, query, now, k, centred)
        terms = self.analyzer.terms(query.query)
        by_text = await self.store.text_candidates(terms, viewer, query, now, k)
        rarest = await self.store.rarest_term_count(terms) if by_text else None
        by_day = await self.said_on_named_days(query, vector, viewer, now, k)
        vector_hits = [
            VectorHit(c.id, c.score, (now - c.valid_at).total_seconds() if c.valid_at else 0.0)
            for c in by_vector
        ]
        text_ids, day_ids = [c.id for c in by_text], [c.id for c in by_day]
        half_life, weight = self.settings.recency_half_life_days * 86400.0, text_weight(rarest)
        by_vector_ids = vector_order(vector_hits, half_life)
        ranked = fuse(by_vector_ids, text_ids, day_ids, weight)
        if ranked and self.settings.second_hop:
            # The second hop: every candidate by its likeness to the best match.
            best = ranked[0][0]
            pool = hop_pool(best, by_vector_ids, text_ids, day_ids)
            hop = await self.store.similar_candidates(best, pool, viewer, query, now, centred)
            ranked = fuse(by_vector_ids, text_ids, day_ids, weight, hop_list(best, [c.id for c in hop], k))
        # Fetch only the winners. The fetch re-checks visibility and filters (defence in depth) and
        # drops rows deleted meanwhile by another process; then the next ones move up.
        hits: list[SearchHit] = []
        position = 0
        while len(hits) < query.limit and position < len(ranked):
            window = ranked[position : position + query.limit - len(hits)]
            position += len(window)
            found = {m.id: m for m in await self.store.fetch([i for i, _ in window], viewer, query, now)}
            hits.extend(
                SearchHit(memory=self._reveal(principal, found[i]), score=score)
                for i, score in window
                if i in found
            )
        return hits

    async def said_on_named_days(
        self, query: SearchQuery, vector: NDArray[np.float32], viewer: Viewer, now: datetime, k: int
    ) -> list[Candidate]:
        """The closest memories from each day the query names ("on 14 May 2023"), best first;
        none if it names no day, or only days outside its own ``since``/``until``."""
        found: list[Candidate] = []
        for start, end in named_days(query.query):
            since = max(start, query.since) if query.since else start
            until = min(end, query.until) if query.until else end
            if since < until:
                window = query.model_copy(update={"since": since, "until": until})
                found += await self.store.vector_candidates(
                    vector, viewer, window, now, k, self.settings.centre_vectors
                )
        return sorted(found, key=lambda c: c.score, reverse=True)[:k]

    # -- deletion and lifecycle ----------------------------------------------------------------
    @timed("forget")
    async def forget(self, principal: Principal, memory_id: str) -> None:
        """Delete for good. Federated memories leave a content-free tombstone so the deletion
        reaches peers; everything else is removed with no copy left."""
        memory = await self.store.get(memory_id, self._viewer(principal))
        if memory is None:
            raise NotFound(f"no memory {memory_id}")
        if not can_modify(principal, memory.owner):
            raise PermissionDenied("only the owner of a memory (or the admin) may forget it")
        later = await self._successors(memory)
        if memory.zone is Zone.FEDERATED:
            await self.store.tombstone([memory_id], self.clock.now(), _now())
            self._federated_changed()
        else:
            await self.store.delete([memory_id])
        await self._reindex(later)

    async def _successors(self, memory: Memory) -> list[Memory]:
        """The thread turns whose full-text entry holds ``memory``'s text as context."""
        turns = self.settings.context_turns
        if memory.thread_id is None or memory.encrypted or turns == 0:
            return []
        return await self.store.thread_after(memory.thread_id, memory.owner, memory.hlc, turns)

    async def _reindex(self, memories: Sequence[Memory]) -> None:
        """Index these turns again from the thread as it is now: a forgotten turn leaves no copy
        in its neighbours' full-text entries."""
        texts = [(memory.id, await self._stored_index_text(memory)) for memory in memories]
        if texts:
            await self.store.reindex(texts)

    async def _embedded_stored(self, memory: Memory) -> str:
        """What the vector of a stored memory embeds (``_embedded``)."""
        if memory.thread_id is None or not self._short(memory.content):
            return memory.content
        earlier = await self.store.thread_context(memory.thread_id, memory.owner, memory.hlc, 1)
        return self._embedded(memory.content, [m.content for m in earlier])

    @timed("forget_owner")
    async def forget_owner(self, principal: Principal, owner: str) -> int:
        """Erase every memory of ``owner`` (GDPR). The owner themself or the admin."""
        if not can_modify(principal, owner):
            raise PermissionDenied("only the admin may erase another owner's memories")
        return await self.store.delete_owner(owner)

    async def collect_garbage(self, now: datetime | None = None) -> GcReport:
        at = now or _now()
        # Expiry is deletion too: the turns after an expired one held its text as context.
        gone = await self.store.expired_turns(at, 10_000)
        gone_ids = {m.id for m in gone}
        later = {m.id: m for turn in gone for m in await self._successors(turn) if m.id not in gone_ids}
        expired = await self.store.purge_expired(at)
        await self._reindex(list(later.values()))
        cutoff = at - timedelta(days=self.settings.tombstone_retention_days)
        tombstones = await self.store.purge_tombstones(cutoff)
        if expired or tombstones:
            logger.info("memory gc: %d expired, %d tombstones purged", expired, tombstones)
        return GcReport(expired=expired, tombstones=tombstones)

    async def reembed(self, progress: Progress | None = None, batch: int = 256) -> int:
        """Re-embed every searchable memory with the configured embedder, then bind the store to it."""
        info = EmbedderInfo(self.embedder.model_id, self.embedder.dimension)
        await self.store.set_embedder_info(info)  # bind first: vectors of the old model stop counting
        total = await self.store.count()
        done = 0
        async for rows in self.store.scan(batch):
            live = [(m, _) for m, _ in rows if not m.tombstone and not m.encrypted]
            if live:
                vectors = await self.embed([await self._embedded_stored(m) for m, _ in live])
                await self.store.set_embeddings(
                    [(m.id, v) for (m, _), v in zip(live, vectors, strict=True)],
                    self.embedder.model_id,
                )
            done += sum(1 for m, _ in rows if not m.tombstone)
            if progress:
                progress(done, total)
        await self.store.set_embedder_info(info)  # every vector is new now: rebuild indexes
        return done
