"""Chats take turns only while calls arrive and the loop runs late; they start in arrival order,
and a chat that gives up its place or its turn leaves nothing behind."""

from __future__ import annotations

import asyncio
import time

import pytest

from noosphere.errors import RateLimited
from noosphere.server.interactive import SAMPLE, TARGET_LAG, UNLIMITED, WINDOW, InteractiveFirst

LATE, ON_TIME = TARGET_LAG * 5, 0.0


async def _started(turns: InteractiveFirst, n: int) -> list[asyncio.Task[None]]:
    tasks = [asyncio.ensure_future(turns.start_chat()) for _ in range(n)]
    await asyncio.sleep(0)
    return tasks


async def test_without_calls_chats_are_never_held_back() -> None:
    turns = InteractiveFirst(streams=2)
    tasks = await _started(turns, 100)
    assert all(t.done() for t in tasks)
    assert (turns.running, turns.waiting, turns.limit) == (100, 0, UNLIMITED)


async def test_a_late_loop_halves_the_limit_down_to_the_floor_and_an_on_time_loop_raises_it() -> None:
    turns = InteractiveFirst(streams=2)
    await _started(turns, 8)
    turns.adjust(LATE)
    assert turns.limit == 4
    turns.adjust(LATE)
    assert turns.limit == 2
    turns.adjust(LATE)
    assert turns.limit == 2  # never below the floor
    turns.adjust(ON_TIME)
    assert turns.limit == 3


async def test_chats_past_the_limit_wait_and_start_in_arrival_order() -> None:
    turns = InteractiveFirst(streams=1)
    await _started(turns, 2)
    turns.adjust(LATE)  # limit 1, 2 running
    order: list[int] = []

    async def chat(n: int) -> None:
        await turns.start_chat()
        order.append(n)

    waiting = [asyncio.ensure_future(chat(n)) for n in range(3)]
    await asyncio.sleep(0)
    assert turns.waiting == 3 and order == []
    turns.end_chat()  # 1 running: still at the limit
    await asyncio.sleep(0)
    assert order == []
    turns.end_chat()  # 0 running: the first waiting chat starts
    await asyncio.sleep(0)
    assert order == [0] and turns.running == 1
    turns.adjust(ON_TIME)  # limit 2: the next one starts
    await asyncio.sleep(0)
    assert order == [0, 1]
    turns._release()  # the calls stopped: everyone starts
    await asyncio.gather(*waiting)
    assert order == [0, 1, 2] and turns.limit == UNLIMITED and turns.running == 3


async def test_a_chat_that_gives_up_waiting_or_its_turn_leaves_nothing_behind() -> None:
    turns = InteractiveFirst(streams=1)
    await _started(turns, 1)
    turns.adjust(LATE)
    gave_up = asyncio.ensure_future(turns.start_chat())
    await asyncio.sleep(0)
    gave_up.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gave_up
    assert turns.waiting == 0
    granted = asyncio.ensure_future(turns.start_chat())
    await asyncio.sleep(0)
    turns.end_chat()  # the turn passes to ``granted``...
    granted.cancel()  # ...which is cancelled before it runs: the turn comes back
    with pytest.raises(asyncio.CancelledError):
        await granted
    assert (turns.running, turns.waiting) == (0, 0)


async def test_zero_streams_never_limits() -> None:
    turns = InteractiveFirst(streams=0)
    turns.call_arrived()
    turns.adjust(LATE)
    await _started(turns, 10)
    assert turns.waiting == 0


async def test_a_crowded_loop_with_calls_arriving_limits_chats_until_the_calls_stop() -> None:
    turns = InteractiveFirst(streams=1)
    await _started(turns, 6)

    async def crowd(seconds: float) -> None:  # loop passes that each take 5 ms
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            turns.call_arrived()
            time.sleep(TARGET_LAG * 5)  # noqa: ASYNC251 - blocks the loop on purpose: it runs late
            await asyncio.sleep(0)

    await crowd(SAMPLE * 10)
    assert turns.limit == 1
    deadline = time.monotonic() + 5
    while turns.limit != UNLIMITED:  # no call for WINDOW: the limit is lifted
        assert time.monotonic() < deadline
        await asyncio.sleep(WINDOW / 10)


async def test_past_the_waiting_limit_a_chat_is_refused_as_the_pools_queue_would() -> None:
    turns = InteractiveFirst(streams=1, max_waiting=2)
    await _started(turns, 1)
    turns.adjust(LATE)  # limit 1, 1 running
    waiting = await _started(turns, 2)
    with pytest.raises(RateLimited):
        await turns.start_chat()
    assert turns.waiting == 2
    turns._release()
    await asyncio.gather(*waiting)
