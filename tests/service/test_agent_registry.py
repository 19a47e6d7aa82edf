"""An agent's profile, as the gate reads it on every call the agent makes: from a short cache,
changed at once by this process and within the cache time by another."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from noosphere.agents.profile import AgentProfile
from noosphere.auth.principal import Level
from noosphere.config import load_settings
from noosphere.embeddings.minilm import MiniLMEmbedder
from noosphere.errors import NotFound
from noosphere.node import Node, open_node


async def test_a_profile_changed_here_applies_at_once(node: Node) -> None:
    await node.agents.declare(AgentProfile(name="scribe", level=Level.L2))
    assert (await node.agents.get("scribe")).level is Level.L2
    await node.agents.declare(
        AgentProfile(name="scribe", level=Level.L3, rules={"deny": ["memory_forget(*)"]})
    )
    changed = await node.agents.get("scribe")
    assert changed.level is Level.L3 and changed.rules
    await node.agents.delete("scribe")
    with pytest.raises(NotFound):
        await node.agents.get("scribe")


@pytest.fixture
async def quick_node(tmp_path: Path, minilm: MiniLMEmbedder) -> AsyncIterator[Node]:
    """A node that remembers tokens and profiles for 0.2 s (``auth.cache_seconds``)."""
    settings = load_settings(None, data_dir=tmp_path / "quick", auth={"cache_seconds": 0.2})
    async with open_node(settings, embedder=minilm) as opened:
        yield opened


async def test_a_profile_changed_by_another_process_applies_within_the_cache_time(quick_node: Node) -> None:
    node = quick_node
    await node.agents.declare(AgentProfile(name="scribe", level=Level.L2))
    assert not (await node.agents.get("scribe")).rules
    # What `noosphere agent ...` in another process does: write the store directly.
    other = AgentProfile(name="scribe", level=Level.L2, rules={"deny": ["memory_forget(*)"]})
    await node.store.put_agent_profile("scribe", other.model_dump_json(), datetime.now(UTC))
    deadline = time.monotonic() + 5
    while not (await node.agents.get("scribe")).rules:
        assert time.monotonic() < deadline, "the other process's change never applied"
        await anyio.sleep(0.05)
