"""What a node remembers for a few seconds expires, is bounded, and 0 seconds remembers nothing."""

from __future__ import annotations

import time

from noosphere.expiring import Expiring


def test_entries_expire() -> None:
    cache: Expiring[str, int] = Expiring(0.05)
    cache.put("a", 1)
    assert cache.get("a") == 1
    deadline = time.monotonic() + 5
    while cache.get("a") is not None:
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_zero_seconds_remembers_nothing() -> None:
    cache: Expiring[str, int] = Expiring(0)
    cache.put("a", 1)
    assert cache.get("a") is None


def test_past_the_limit_it_starts_afresh() -> None:
    cache: Expiring[int, int] = Expiring(60, limit=3)
    for n in range(4):
        cache.put(n, n)
    assert [cache.get(n) for n in range(4)] == [None, None, None, 3]
    cache.clear()
    assert cache.get(3) is None
