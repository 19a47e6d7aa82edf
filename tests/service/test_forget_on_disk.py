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
