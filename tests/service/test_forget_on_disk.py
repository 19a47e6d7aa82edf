"""Forgetting really deletes: after ``forget``, the text is nowhere in the SQLite files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from noosphere.config import Settings
from noosphere.embeddings.minilm import MiniLMEmbedder
from noosphere.memory.model import MemoryDraft, SearchQuery, Zone
from noosphere.node import open_node
from tests.service.conftest import make_agent

MARKER = "zqxjkvbw-unforgettable-passphrase"


def _on_disk(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in data_dir.glob("noosphere.db*"))


async def test_forgotten_text_leaves_no_bytes_in_the_database_files(
    settings: Settings, minilm: MiniLMEmbedder
) -> None:
    async with open_node(settings, embedder=minilm) as node:
        agent = await make_agent(node, "a")
        keep = [MemoryDraft(content=f"ordinary note number {i}", zone=Zone.SHARED) for i in range(50)]
        await node.memory.store_many(agent, keep)
        secret = await node.memory.store_one(agent, MemoryDraft(content=f"my {MARKER} is here", tags=["t"]))
        assert MARKER.encode() in _on_disk(settings.data_dir)
        await node.memory.forget(agent, secret.id)
        assert MARKER.encode() not in _on_disk(settings.data_dir)
    assert MARKER.encode() not in _on_disk(settings.data_dir)


async def test_gdpr_erasure_leaves_no_bytes(settings: Settings, minilm: MiniLMEmbedder) -> None:
    async with open_node(settings, embedder=minilm) as node:
        agent = await make_agent(node, "a")
        await node.memory.store_many(agent, [MemoryDraft(content=f"{MARKER} fact {i}") for i in range(5)])
        assert await node.memory.forget_owner(agent, agent.id) == 5
    assert MARKER.encode() not in _on_disk(settings.data_dir)


async def test_a_forgotten_turn_leaves_no_copy_in_its_neighbours_index_entries(
    settings: Settings, minilm: MiniLMEmbedder
) -> None:
    """A thread turn's full-text entry holds the turns before it as context: forgetting one turn
    reaches those copies too."""
    async with open_node(settings, embedder=minilm) as node:
        agent = await make_agent(node, "a")
        turns = [
            MemoryDraft(content=text, kind="message", thread_id="standup")
            for text in ("good morning", f"the vault code is {MARKER}", "noted", "see you at noon")
        ]
        stored = await node.memory.store_many(agent, turns)
        found = await node.memory.search(agent, SearchQuery(query=MARKER))
        assert {h.memory.content for h in found} >= {"noted"}  # a neighbour matched through context
        await node.memory.forget(agent, stored[1].id)
        assert MARKER.encode() not in _on_disk(settings.data_dir)
        after = await node.memory.search(agent, SearchQuery(query=MARKER))
        assert all(MARKER not in h.memory.content for h in after)
        # the neighbours are still found by their own words and the context that remains
        assert "noted" in {
            h.memory.content for h in await node.memory.search(agent, SearchQuery(query="noted morning"))
        }
    assert MARKER.encode() not in _on_disk(settings.data_dir)


async def test_an_expired_turn_leaves_no_copy_in_its_neighbours_index_entries(
    settings: Settings, minilm: MiniLMEmbedder
) -> None:
    """Expiry is deletion too: the memory GC re-indexes the turns that held an expired one."""
    async with open_node(settings, embedder=minilm) as node:
        agent = await make_agent(node, "a")
        soon = datetime.now(UTC) + timedelta(seconds=30)
        turns = [
            MemoryDraft(content="hello", kind="message", thread_id="chat"),
            MemoryDraft(content=f"temporary {MARKER}", kind="message", thread_id="chat", expires_at=soon),
            MemoryDraft(content="understood", kind="message", thread_id="chat"),
        ]
        await node.memory.store_many(agent, turns)
        assert MARKER.encode() in _on_disk(settings.data_dir)
        report = await node.memory.collect_garbage(now=soon + timedelta(seconds=1))
        assert report.expired == 1
        assert MARKER.encode() not in _on_disk(settings.data_dir)
        kept = await node.memory.search(agent, SearchQuery(query="understood hello"))
        assert "understood" in {h.memory.content for h in kept}


async def test_a_thousand_forgets_leave_the_full_text_index_sound(settings: Settings) -> None:
    """FTS5's 'optimize' after each delete left SQLite 3.40's index malformed after about a
    thousand of them (searches answered 500); forgetting rebuilds the index instead."""
    from noosphere.testing import FakeEmbedder

    async with open_node(settings, embedder=FakeEmbedder()) as node:
        agent = await make_agent(node, "a")
        for i in range(1100):
            notes = [
                MemoryDraft(
                    content=f"client {n} note {i}: service {i % 50} moved to rack {i % 7}", zone=Zone.SHARED
                )
                for n in range(2)
            ]
            await node.memory.store_many(agent, notes)
            scratch = await node.memory.store_one(agent, MemoryDraft(content=f"scratch {i}"))
            await node.memory.forget(agent, scratch.id)
            if i % 100 == 0:
                assert await node.memory.search(agent, SearchQuery(query="rack", limit=3))
        hits = await node.memory.search(agent, SearchQuery(query="which rack did service 7 move to", limit=3))
        assert hits and "rack" in hits[0].memory.content


async def test_a_malformed_full_text_index_is_rebuilt_at_the_next_search(settings: Settings) -> None:
    """A database an older node left with a malformed index answers searches again."""
    import sqlite3

    from noosphere.testing import FakeEmbedder

    if settings.storage.backend != "sqlite":
        return
    async with open_node(settings, embedder=FakeEmbedder()) as node:
        agent = await make_agent(node, "a")
        await node.memory.store_one(agent, MemoryDraft(content="the backup runs at two", zone=Zone.SHARED))
    # What the old erasure did, straight on the index: a delete, then 'optimize', a thousand times.
    db = sqlite3.connect(settings.data_dir / "noosphere.db", isolation_level=None)
    rowid, malformed = 100_000, False
    try:
        for i in range(1200):
            for n in range(2):
                rowid += 1
                text = f"client {n} note {i}: the deploy of service {i % 50} moved to rack {i % 7}"
                db.execute("INSERT INTO memories_fts (rowid, index_text) VALUES (?, ?)", (rowid, text))
            rowid += 1
            db.execute("INSERT INTO memories_fts (rowid, index_text) VALUES (?, ?)", (rowid, f"scratch {i}"))
            db.execute(
                "INSERT INTO memories_fts (memories_fts, rowid, index_text) VALUES ('delete', ?, ?)",
                (rowid, f"scratch {i}"),
            )
            db.execute("INSERT INTO memories_fts (memories_fts) VALUES ('optimize')")
            ranked = "SELECT rowid, bm25(memories_fts) FROM memories_fts WHERE memories_fts MATCH 'rack'"
            db.execute(ranked + " ORDER BY 2").fetchall()
    except sqlite3.DatabaseError as exc:
        malformed = "malformed" in str(exc)
    finally:
        db.close()
    assert malformed, "the old erasure's pattern did not break this SQLite's index"
    async with open_node(settings, embedder=FakeEmbedder()) as node:
        agent = await node.auth.by_id("agent:a")
        hits = await node.memory.search(agent, SearchQuery(query="when does the backup run"))
        assert [h.memory.content for h in hits][:1] == ["the backup runs at two"]
