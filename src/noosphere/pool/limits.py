"""Per-key rate limits as a pure decision over a one-minute window, and the limiter that keeps
the windows in process memory (a cluster's processes share theirs: ``cluster/limits.py``).

A window keeps its entries and their running sums, so admitting a request costs the same with ten
entries in the last minute as with a hundred thousand; only a refusal walks the entries, to say
when to retry."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

WINDOW_S = 60.0


@dataclass(frozen=True)
class Admission:
    allowed: bool
    retry_after: float = 0.0
    reason: str = ""


Entry = tuple[float, int, int]  # (time, tokens, requests)


@dataclass
class Window:
    """The last minute of one key: (time, tokens, requests) entries, oldest first, and their
    sums. One process keeps an entry per request (requests 1), and one per completion (requests
    0: its tokens arrive after the request); a cluster keeps one per second (``cluster/limits.py``)."""

    entries: deque[Entry] = field(default_factory=deque)
    requests: int = 0
    tokens: int = 0

    @classmethod
    def of(cls, entries: Iterable[Entry], now: float) -> Window:
        window = cls()
        for entry in entries:
            window.add(*entry)
        window.expire(now)
        return window

    def add(self, at: float, tokens: int, requests: int) -> None:
        self.entries.append((at, tokens, requests))
        self.requests += requests
        self.tokens += tokens

    def expire(self, now: float) -> None:
        while self.entries and self.entries[0][0] <= now - WINDOW_S:
            _, tokens, requests = self.entries.popleft()
            self.requests -= requests
            self.tokens -= tokens


def admit(window: Window, now: float, rpm: int | None, tpm: int | None, tokens: int) -> Admission:
    """May a request costing ``tokens`` start now, given the last minute (``window``, expired
    entries already dropped)?"""
    if rpm is not None and window.requests >= rpm:
        gone = 0
        for t, _, requests in window.entries:  # oldest first: when have enough requests left?
            gone += requests
            if window.requests - gone < rpm:
                return Admission(False, t + WINDOW_S - now, f"{rpm} requests per minute")
    if tpm is not None:
        if tokens > tpm:
            return Admission(
                False, WINDOW_S, f"one request of {tokens} tokens exceeds {tpm} tokens per minute"
            )
        if window.tokens + tokens > tpm:
            freed = 0
            for t, n, _ in window.entries:  # oldest first: when has enough left the window?
                freed += n
                if window.tokens - freed + tokens <= tpm:
                    return Admission(False, t + WINDOW_S - now, f"{tpm} tokens per minute")
    return Admission(True)


class Limiter(Protocol):
    """Per-key rate limits: this process's (``RateLimiter``) or a cluster's, shared."""

    async def admit(self, key: str, rpm: int | None, tpm: int | None, tokens: int) -> Admission:
        """May a request of ``key`` costing ``tokens`` start now? If so, it counts from now."""

    async def add(self, key: str, tokens: int) -> None:
        """Add tokens known only after a request (its completion) to the key's last minute."""


class RateLimiter:
    """The windows of one process, in memory."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._windows: dict[str, Window] = {}

    def check(self, key: str, rpm: int | None, tpm: int | None, tokens: int) -> Admission:
        now = self.clock()
        window = self._windows.setdefault(key, Window())
        window.expire(now)
        decision = admit(window, now, rpm, tpm, tokens)
        if decision.allowed:
            window.add(now, tokens, 1)
        return decision

    def charge(self, key: str, tokens: int) -> None:
        """Add tokens known only after the request (its completion) to the current window."""
        if tokens > 0:
            self._windows.setdefault(key, Window()).add(self.clock(), tokens, 0)

    async def admit(self, key: str, rpm: int | None, tpm: int | None, tokens: int) -> Admission:
        return self.check(key, rpm, tpm, tokens)

    async def add(self, key: str, tokens: int) -> None:
        self.charge(key, tokens)
