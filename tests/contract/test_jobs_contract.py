"""Scheduled job runs, on every store backend: a tick is claimed once, however many claim it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio

from noosphere.store.contract import MemoryStore

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TICK = "2026-03-01T12:00:00+00:00"


async def test_a_tick_is_claimed_once_then_finished_and_listed(store: MemoryStore) -> None:
    assert await store.claim_job_run("memory_gc", TICK, "node-a", NOW)
    assert not await store.claim_job_run("memory_gc", TICK, "node-b", NOW)  # already taken
    assert await store.claim_job_run("historian", TICK, "node-b", NOW + timedelta(seconds=1))
    (running,) = await store.job_runs("memory_gc", 10)
    assert (running.node, running.outcome, running.finished_at) == ("node-a", "running", None)
    await store.finish_job_run("memory_gc", TICK, "ok", "purged 3", NOW + timedelta(seconds=2))
    runs = await store.job_runs(None, 10)
    assert [(r.job, r.outcome) for r in runs] == [("historian", "running"), ("memory_gc", "ok")]
    assert runs[1].detail == "purged 3"
    assert runs[1].finished_at == NOW + timedelta(seconds=2)
    assert await store.job_runs(None, 1) == runs[:1]


async def test_concurrent_claims_of_one_tick_let_exactly_one_through(store: MemoryStore) -> None:
    won: list[bool] = []

    async def claim(node: str) -> None:
        won.append(await store.claim_job_run("historian", TICK, node, NOW))

    async with anyio.create_task_group() as group:
        for n in range(8):
            group.start_soon(claim, f"node-{n}")
    assert sorted(won) == [False] * 7 + [True]
