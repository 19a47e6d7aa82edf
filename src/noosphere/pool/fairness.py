"""Fairness decisions as pure functions over plain data.

Across users: the Virtual Token Counter (VTC) of Sheng et al., "Fairness in Serving Large Language
Models" (OSDI '24). Each user has a counter of weighted service received — input tokens count 1,
output tokens 2. The next job to run belongs to the waiting user with the smallest counter. A user
who returns after being idle is lifted to the smallest counter among active users, so idling does
not bank credit to later starve others. The paper bounds the service difference between two
continuously backlogged users by a constant (≈ 2 x the largest weighted size of one request).

Across workers: each worker's service is a decayed sum of weighted tokens it processed, divided by
its benchmarked capacity (tokens/s); the least loaded eligible worker gets the job. A joining
worker starts at the current minimum, so it is neither flooded nor starved.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

INPUT_WEIGHT = 1.0
OUTPUT_WEIGHT = 2.0


def weighted_tokens(prompt_tokens: int, completion_tokens: int) -> float:
    return INPUT_WEIGHT * prompt_tokens + OUTPUT_WEIGHT * completion_tokens


def next_user(waiting: Mapping[str, float], arrival: Mapping[str, int] | None = None) -> str | None:
    """The waiting user with the smallest counter; ties go to the earliest ``arrival`` (the
    order their waiting requests came in), then the smallest id."""
    if not waiting:
        return None
    order = arrival or {}
    return min(waiting, key=lambda user: (waiting[user], order.get(user, 0), user))


def lifted_counter(counter: float, active_counters: Mapping[str, float]) -> float:
    """A returning user's counter: raised to the smallest counter among active users."""
    if not active_counters:
        return counter
    return max(counter, min(active_counters.values()))


@dataclass(frozen=True)
class WorkerLoad:
    id: str
    service: float  # decayed weighted tokens served
    capacity: float  # benchmarked tokens/s (> 0)
    free_slots: int


def decayed(service: float, elapsed_s: float, half_life_s: float) -> float:
    return service * math.pow(0.5, max(0.0, elapsed_s) / half_life_s)


def pick_worker(candidates: list[WorkerLoad]) -> str | None:
    """The candidate with a free slot and the least service relative to its capacity."""
    free = [w for w in candidates if w.free_slots > 0]
    if not free:
        return None
    return min(free, key=lambda w: (w.service / max(w.capacity, 1e-9), -w.capacity, w.id)).id


def joining_service(existing: list[WorkerLoad], capacity: float) -> float:
    """Starting service for a new worker: the current minimum normalised service, scaled."""
    if not existing:
        return 0.0
    return min(w.service / max(w.capacity, 1e-9) for w in existing) * capacity
