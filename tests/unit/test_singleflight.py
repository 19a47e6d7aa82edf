"""Concurrent reads of one key share a single read, whoever of the callers goes away."""

from __future__ import annotations

import asyncio

import pytest

from noosphere.singleflight import SingleFlight


async def test_concurrent_callers_share_one_read_and_later_ones_read_again() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    reads = 0
    gate = asyncio.Event()

    async def read() -> int:
        nonlocal reads
        reads += 1
        await gate.wait()
        return reads

    callers = [asyncio.ensure_future(flight.do("k", read)) for _ in range(50)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*callers) == [1] * 50
    assert await flight.do("k", read) == 2  # finished reads are not remembered: that is the cache's job


async def test_a_caller_that_leaves_does_not_cancel_the_read_for_the_others() -> None:
    flight: SingleFlight[str, str] = SingleFlight()
    gate = asyncio.Event()

    async def read() -> str:
        await gate.wait()
        return "value"

    leaving = asyncio.ensure_future(flight.do("k", read))
    staying = asyncio.ensure_future(flight.do("k", read))
    await asyncio.sleep(0)
    leaving.cancel()
    gate.set()
    assert await staying == "value"
    with pytest.raises(asyncio.CancelledError):
        await leaving


async def test_a_failed_read_fails_every_caller_and_the_next_one_tries_again() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    attempts = 0

    async def read() -> int:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0.01)
        if attempts == 1:
            raise RuntimeError("store away")
        return attempts

    results = await asyncio.gather(*(flight.do("k", read) for _ in range(5)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert await flight.do("k", read) == 2
