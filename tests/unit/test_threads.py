"""Blocking work runs on the pool's own threads, in order, and a call handed over runs to its end."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from noosphere.threads import Threads


async def test_calls_run_on_the_named_threads_in_the_order_they_arrive() -> None:
    threads = Threads("store", 1)
    seen: list[tuple[int, str]] = []

    def step(n: int) -> int:
        seen.append((n, threading.current_thread().name))
        return n * n

    results = await asyncio.gather(*(threads.run(lambda n=n: step(n)) for n in range(20)))
    threads.close()
    assert results == [n * n for n in range(20)]
    assert [n for n, _ in seen] == list(range(20))
    assert all(name.startswith("store") for _, name in seen)


async def test_an_error_reaches_the_caller() -> None:
    threads = Threads("store", 1)

    def fail() -> None:
        raise ValueError("disk says no")

    with pytest.raises(ValueError, match="disk says no"):
        await threads.run(fail)
    threads.close()


async def test_a_cancelled_caller_does_not_tear_off_the_call() -> None:
    threads = Threads("store", 1)
    started, finished = threading.Event(), threading.Event()

    def write() -> None:
        started.set()
        time.sleep(0.05)
        finished.set()

    caller = asyncio.ensure_future(threads.run(write))
    deadline = time.monotonic() + 5
    while not started.is_set():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.005)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    threads.close()  # waits for what was handed over
    assert finished.is_set()
