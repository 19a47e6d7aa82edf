"""The overview's small charts: requests and completion tokens per minute over the last hour,
sampled from the node's own counters (``server/metrics.py``) every ``SAMPLE_SECONDS``."""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import anyio

SAMPLE_SECONDS = 10.0
KEPT = 360  # one hour of samples


@dataclass(frozen=True)
class Sample:
    at: float  # wall-clock seconds
    requests: int  # totals since the node started
    tokens: int


class History:
    def __init__(self, read: Callable[[], tuple[int, int]], clock: Callable[[], float] = time.time) -> None:
        self._read = read
        self._clock = clock
        self.samples: deque[Sample] = deque(maxlen=KEPT)

    def sample(self) -> None:
        requests, tokens = self._read()
        self.samples.append(Sample(self._clock(), requests, tokens))

    def per_minute(self) -> dict[str, list[float]]:
        """Series for the charts: ``at`` (seconds), and requests and tokens per minute between
        each sample and the one before."""
        at: list[float] = []
        requests: list[float] = []
        tokens: list[float] = []
        points = list(self.samples)
        for before, after in itertools.pairwise(points):
            span = after.at - before.at
            if span <= 0:
                continue
            at.append(round(after.at, 3))
            requests.append(round((after.requests - before.requests) * 60 / span, 2))
            tokens.append(round((after.tokens - before.tokens) * 60 / span, 2))
        return {"at": at, "requests": requests, "tokens": tokens}

    async def run(self) -> None:
        """Sample forever (a supervised loop of the node)."""
        while True:
            self.sample()
            await anyio.sleep(SAMPLE_SECONDS)


__all__ = ["History", "Sample"]
