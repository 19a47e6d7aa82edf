from __future__ import annotations

import pytest

from noosphere.pool.limits import Admission, RateLimiter, Window, admit


@pytest.mark.parametrize(
    ("window", "rpm", "tpm", "tokens", "expected"),
    [
        ([], None, None, 10, Admission(True)),
        ([(95.0, 10, True), (99.0, 10, True)], 2, None, 10, Admission(False, 55.0, "2 requests per minute")),
        ([(30.0, 10, True), (99.0, 10, True)], 2, None, 10, Admission(True)),  # the first left the window
        ([(95.0, 10, True), (96.0, 90, False)], 2, None, 10, Admission(True)),  # tokens are not requests
        (
            [(50.0, 60, True), (90.0, 30, False)],
            None,
            100,
            20,
            Admission(False, 10.0, "100 tokens per minute"),
        ),
        ([(50.0, 60, True), (90.0, 30, False)], None, 100, 10, Admission(True)),
        (
            [],
            None,
            100,
            500,
            Admission(False, 60.0, "one request of 500 tokens exceeds 100 tokens per minute"),
        ),
    ],
)
def test_admission(
    window: list[tuple[float, int, bool]], rpm: int | None, tpm: int | None, tokens: int, expected: Admission
) -> None:
    assert admit(Window.of(window, 100.0), 100.0, rpm, tpm, tokens) == expected


def test_a_window_keeps_its_sums_as_entries_come_and_go() -> None:
    window = Window.of([(10.0, 5, True), (20.0, 7, False), (65.0, 3, True)], now=75.0)
    assert (window.requests, window.tokens, len(window.entries)) == (1, 10, 2)
    window.expire(125.1)
    assert (window.requests, window.tokens, len(window.entries)) == (0, 0, 0)


def test_the_limiter_remembers_and_forgets() -> None:
    now = [0.0]
    limiter = RateLimiter(lambda: now[0])
    assert limiter.check("k", 2, None, 1).allowed
    assert limiter.check("k", 2, None, 1).allowed
    refused = limiter.check("k", 2, None, 1)
    assert not refused.allowed
    assert refused.retry_after == 60.0
    now[0] = 61.0
    assert limiter.check("k", 2, None, 1).allowed
    limiter.charge("k", 500)
    assert not limiter.check("k", None, 400, 1).allowed
