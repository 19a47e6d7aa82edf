from __future__ import annotations

from datetime import UTC, datetime

import anyio

from noosphere.governance.merkle import leaf_hash
from noosphere.store.contract import MemoryStore, TreeHead


def pair(text: str) -> tuple[str, bytes]:
    return text, leaf_hash(text.encode())


async def test_entries_are_appended_in_order_and_read_back(store: MemoryStore) -> None:
    assert await store.append_audit([pair("a"), pair("b")]) == 0
    assert await store.append_audit([pair("c")]) == 2
    entries = await store.audit_entries()
    assert [(e.seq, e.entry) for e in entries] == [(0, "a"), (1, "b"), (2, "c")]
    assert entries[2].leaf == leaf_hash(b"c")
    assert [e.entry for e in await store.audit_entries(1, 1)] == ["b"]


async def test_concurrent_appenders_never_share_a_position(store: MemoryStore) -> None:
    async with anyio.create_task_group() as group:
        for i in range(20):
            group.start_soon(store.append_audit, [pair(f"e{i}"), pair(f"f{i}")])
    entries = await store.audit_entries()
    assert [e.seq for e in entries] == list(range(40))
    assert len({e.entry for e in entries}) == 40


async def test_tree_heads_are_kept_once_per_size(store: MemoryStore) -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)
    first = TreeHead(size=2, root=b"r" * 32, at=at, signature=b"s" * 64)
    await store.put_tree_head(TreeHead(size=5, root=b"q" * 32, at=at, signature=b"t" * 64))
    await store.put_tree_head(first)
    await store.put_tree_head(TreeHead(size=2, root=b"x" * 32, at=at, signature=b"y" * 64))
    heads = await store.tree_heads()
    assert [h.size for h in heads] == [2, 5]
    assert heads[0] == first
