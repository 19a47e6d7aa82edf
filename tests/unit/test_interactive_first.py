"""Chats take turns only while calls arrive and the loop runs late: the controller halves and
raises the pool's limit on running chats, and lifts it when the calls stop. (How the pool holds
chats back, in fair order, is in tests/pool/test_scheduler.py.)"""

from __future__ import annotations

import asyncio
import time

from noosphere.pool.jobs import ChatJob
from noosphere.pool.protocol import JobRequest, ModelOffer
from noosphere.pool.scheduler import Scheduler, Worker
from noosphere.server.interactive import SAMPLE, TARGET_LAG, UNLIMITED, WINDOW, InteractiveFirst

LATE, ON_TIME = TARGET_LAG * 5, 0.0


def _pool(chats: int) -> Scheduler:
    """A scheduler with ``chats`` chat completions running on one worker."""
    scheduler = Scheduler()
    offer = ModelOffer(name="smol", context_length=2048)
    scheduler.add_worker(Worker(id="w", name="w", models={"smol": offer}, capacity=1000))
    for _ in range(chats):
        request = JobRequest(model="smol", messages=[{"role": "user", "content": "hi"}])
        job = ChatJob(user="user:a", model="smol", request=request, prompt_tokens=1, deadline=1e12)
        job.bulk = True
        scheduler.submit(job)
    return scheduler


def _chat(scheduler: Scheduler) -> ChatJob:
    request = JobRequest(model="smol", messages=[{"role": "user", "content": "hi"}])
    job = ChatJob(user="user:b", model="smol", request=request, prompt_tokens=1, deadline=1e12, bulk=True)
    scheduler.submit(job)
    return job


async def test_a_late_loop_halves_the_limit_down_to_the_floor_and_an_on_time_loop_raises_it() -> None:
    pool = _pool(8)
    turns = InteractiveFirst(streams=2)
    turns.govern(pool)
    turns.adjust(LATE)
    assert turns.limit == pool.bulk_limit == 4
    assert pool.bulk_running == 8  # running chats are never stopped
    turns.adjust(LATE)
    assert pool.bulk_limit == 2
    turns.adjust(LATE)
    assert pool.bulk_limit == 2  # never below the floor
    held = _chat(pool)
    assert not pool.bulk_running < pool.bulk_limit and held.worker_id is None
    turns.adjust(ON_TIME)
    assert pool.bulk_limit == 3


async def test_when_the_calls_stop_the_limit_is_lifted_and_waiting_chats_start() -> None:
    pool = _pool(2)
    turns = InteractiveFirst(streams=1)
    turns.govern(pool)
    turns.adjust(LATE)
    held = _chat(pool)
    assert held.worker_id is None
    turns.release()
    assert pool.bulk_limit == UNLIMITED and held.worker_id == "w"


async def test_zero_streams_or_no_pool_never_limits() -> None:
    off = InteractiveFirst(streams=0)
    off.govern(_pool(4))
    off.call_arrived()
    assert off.last_call == -float("inf")  # nothing measured, nothing limited
    closing = InteractiveFirst(streams=1)
    closing.call_arrived()  # before the node opens, or after it closed
    closing.adjust(LATE)
    assert closing.limit == UNLIMITED


async def test_a_crowded_loop_with_calls_arriving_limits_chats_until_the_calls_stop() -> None:
    pool = _pool(6)
    turns = InteractiveFirst(streams=1)
    turns.govern(pool)

    async def crowd(seconds: float) -> None:  # loop passes that each take 5 ms
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            turns.call_arrived()
            time.sleep(TARGET_LAG * 5)  # noqa: ASYNC251 - blocks the loop on purpose: it runs late
            await asyncio.sleep(0)

    await crowd(SAMPLE * 10)
    assert pool.bulk_limit == 1
    deadline = time.monotonic() + 5
    while pool.bulk_limit != UNLIMITED:  # no call for WINDOW: the limit is lifted
        assert time.monotonic() < deadline
        await asyncio.sleep(WINDOW / 10)
