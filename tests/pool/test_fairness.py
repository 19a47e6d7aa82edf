"""Fairness as table tests, plus a simulation of the VTC bound."""

from __future__ import annotations

import random

import pytest

from noosphere.pool.fairness import (
    WorkerLoad,
    decayed,
    joining_service,
    lifted_counter,
    next_user,
    pick_worker,
    weighted_tokens,
)


def test_ties_go_to_the_earliest_arrival() -> None:
    assert next_user({"a": 3.0, "b": 3.0}, {"a": 9, "b": 2}) == "b"


@pytest.mark.parametrize(
    ("waiting", "expected"),
    [
        ({}, None),
        ({"a": 5.0}, "a"),
        ({"a": 5.0, "b": 3.0}, "b"),
        ({"a": 3.0, "b": 3.0}, "a"),
        ({"b": 3.0, "a": 3.0}, "a"),
        ({"heavy": 10_000.0, "light": 20.0, "new": 20.0}, "light"),
    ],
)
def test_next_user_has_the_smallest_counter(waiting: dict[str, float], expected: str | None) -> None:
    assert next_user(waiting) == expected


@pytest.mark.parametrize(
    ("counter", "active", "expected"),
    [
        (0.0, {}, 0.0),
        (0.0, {"a": 500.0, "b": 300.0}, 300.0),  # idle user lifted: no banked credit
        (900.0, {"a": 500.0}, 900.0),  # never lowered
    ],
)
def test_returning_users_are_lifted(counter: float, active: dict[str, float], expected: float) -> None:
    assert lifted_counter(counter, active) == expected


def test_output_tokens_weigh_twice_input() -> None:
    assert weighted_tokens(100, 50) == 200.0


@pytest.mark.parametrize(
    ("workers", "expected"),
    [
        ([], None),
        ([WorkerLoad("a", 0, 10, 0)], None),
        ([WorkerLoad("a", 100, 10, 1), WorkerLoad("b", 100, 50, 1)], "b"),  # relative to capacity
        ([WorkerLoad("a", 10, 10, 1), WorkerLoad("b", 1000, 50, 1)], "a"),
        ([WorkerLoad("a", 0, 10, 1), WorkerLoad("b", 0, 50, 1)], "b"),  # tie: the faster one
        ([WorkerLoad("a", 0, 10, 0), WorkerLoad("b", 900, 10, 2)], "b"),
    ],
)
def test_pick_worker_balances_service_over_capacity(workers: list[WorkerLoad], expected: str | None) -> None:
    assert pick_worker(workers) == expected


def test_joining_worker_starts_at_the_current_minimum() -> None:
    existing = [WorkerLoad("a", 400, 10, 1), WorkerLoad("b", 900, 30, 1)]
    assert joining_service(existing, 20) == pytest.approx(30 * 20)
    assert joining_service([], 20) == 0.0


def test_decay_halves_per_half_life() -> None:
    assert decayed(100.0, 60.0, 60.0) == pytest.approx(50.0)


def test_vtc_keeps_backlogged_users_within_the_bound() -> None:
    """Two users always have work queued; one sends 10x larger requests. With one server of fixed
    speed, VTC keeps their weighted service within 2 x the largest request's weight."""
    rng = random.Random(3)
    counters = {"heavy": 0.0, "light": 0.0}
    served = {"heavy": 0.0, "light": 0.0}
    sizes = {"heavy": (800, 400), "light": (80, 40)}
    largest = max(weighted_tokens(p, c) for p, c in sizes.values())
    worst_gap = 0.0
    for _ in range(2000):
        user = next_user(counters)
        assert user is not None
        prompt, completion = sizes[user]
        cost = weighted_tokens(rng.randint(prompt // 2, prompt), rng.randint(completion // 2, completion))
        counters[user] += cost
        served[user] += cost
        worst_gap = max(worst_gap, abs(served["heavy"] - served["light"]))
    assert worst_gap <= 2 * largest
    assert served["light"] == pytest.approx(served["heavy"], rel=0.01)
