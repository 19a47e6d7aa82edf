"""Per-key rate limits as a pure decision over a one-minute window, and the limiter that keeps
the windows (in process memory: limits protect this node; the ledger is what persists)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

WINDOW_S = 60.0


@dataclass(frozen=True)
class Admission:
    allowed: bool
    retry_after: float = 0.0
    reason: str = ""


def admit(
    window: Sequence[tuple[float, int, bool]], now: float, rpm: int | None, tpm: int | None, tokens: int
) -> Admission:
    """May a request costing ``tokens`` start now, given the last minute's (time, tokens,
    is_request) entries? (Completion tokens arrive later as entries that are not requests.)"""
    recent = [(t, n) for t, n, _ in window if t > now - WINDOW_S]
    requests = [t for t, _, is_request in window if is_request and t > now - WINDOW_S]
    if rpm is not None and len(requests) >= rpm:
        oldest = requests[len(requests) - rpm]
        return Admission(False, oldest + WINDOW_S - now, f"{rpm} requests per minute")
    if tpm is not None:
        if tokens > tpm:
            return Admission(
                False, WINDOW_S, f"one request of {tokens} tokens exceeds {tpm} tokens per minute"
            )
        used = sum(n for _, n in recent)
        if used + tokens > tpm:
            freed = 0
            for t, n in recent:  # oldest first: when has enough left the window?
                freed += n
                if used - freed + tokens <= tpm:
                    return Admission(False, t + WINDOW_S - now, f"{tpm} tokens per minute")
    return Admission(True)


class RateLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._windows: dict[str, deque[tuple[float, int, bool]]] = {}

    def check(self, key: str, rpm: int | None, tpm: int | None, tokens: int) -> Admission:
        now = self.clock()
        window = self._windows.setdefault(key, deque())
        while window and window[0][0] <= now - WINDOW_S:
            window.popleft()
        decision = admit(window, now, rpm, tpm, tokens)
        if decision.allowed:
            window.append((now, tokens, True))
        return decision

    def charge(self, key: str, tokens: int) -> None:
        """Add tokens known only after the request (its completion) to the current window."""
        if tokens > 0:
            self._windows.setdefault(key, deque()).append((self.clock(), tokens, False))
