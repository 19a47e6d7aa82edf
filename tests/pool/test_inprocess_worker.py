"""An in-process worker (a backend the node serves itself) stays in the pool while idle: it says
it is alive as a remote worker's heartbeats do, so the silent-worker sweep never drops it."""

from __future__ import annotations

import anyio

from noosphere.pool.inprocess import InProcessWorker
from noosphere.pool.scheduler import Scheduler
from noosphere.testing import FakeModel


async def test_an_idle_in_process_worker_is_not_dropped_as_silent() -> None:
    scheduler = Scheduler(heartbeat_interval=0.05)
    worker = InProcessWorker(scheduler, FakeModel("talker"), "talker")
    async with anyio.create_task_group() as group:
        group.start_soon(worker.run)
        await anyio.wait_all_tasks_blocked()  # it joined the pool and waits for jobs
        assert "talker" in scheduler.models()
        for _ in range(10):  # ten times the silence a remote worker is allowed, idle all along
            await anyio.sleep(0.05 * 3)
            assert scheduler.expire_silent_workers() == []
        assert "talker" in scheduler.models()
        group.cancel_scope.cancel()
    assert "talker" not in scheduler.models()  # it leaves when it stops
