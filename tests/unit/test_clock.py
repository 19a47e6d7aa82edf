from __future__ import annotations

from noosphere.clock import HybridLogicalClock, physical_ms


def test_stamps_increase_even_when_the_wall_clock_stalls_or_goes_back() -> None:
    times = iter([1000, 1000, 999, 1001])
    clock = HybridLogicalClock(lambda: next(times))
    stamps = [clock.now() for _ in range(4)]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == 4
    assert physical_ms(stamps[-1]) == 1001


def test_observing_a_later_stamp_moves_the_clock_past_it() -> None:
    clock = HybridLogicalClock(lambda: 5)
    remote = HybridLogicalClock(lambda: 50).now()
    clock.observe(remote)
    assert clock.now() > remote
