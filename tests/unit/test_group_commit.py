from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from noosphere.groupcommit import GroupCommit


async def test_concurrent_submitters_share_one_flush_and_get_their_own_results() -> None:
    batches: list[list[int]] = []

    async def flush(items: list[int]) -> list[int]:
        batches.append(items)
        await anyio.lowlevel.checkpoint()
        return [i * 10 for i in items]

    commit: GroupCommit[int, int] = GroupCommit(flush)
    results: dict[int, list[int]] = {}

    async def submit(n: int) -> None:
        results[n] = await commit.submit([n, n + 100])

    async with anyio.create_task_group() as group:
        for n in range(20):
            group.start_soon(submit, n)
    assert all(results[n] == [n * 10, (n + 100) * 10] for n in range(20))
    assert len(batches) < 20  # shared
    assert sorted(i for b in batches for i in b) == sorted([*range(20), *range(100, 120)])


async def test_a_failed_flush_fails_every_submitter_of_that_batch_only() -> None:
    calls = 0

    async def flush(items: list[str]) -> list[str]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("disk full")
        return items

    commit: GroupCommit[str, str] = GroupCommit(flush)
    with pytest.raises(OSError, match="disk full"):
        await commit.submit(["a"])
    assert await commit.submit(["b"]) == ["b"]


async def test_batches_respect_the_size_limit() -> None:
    sizes: list[int] = []

    async def flush(items: list[int]) -> list[int]:
        sizes.append(len(items))
        return items

    commit: GroupCommit[int, int] = GroupCommit(flush, max_batch=10)
    async with anyio.create_task_group() as group:
        for n in range(8):
            group.start_soon(commit.submit, [n] * 4)
    assert max(sizes) <= 10
    assert sum(sizes) == 32
