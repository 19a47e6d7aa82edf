"""The cluster's part of the PostgreSQL store, with two store connections pools standing for two
processes: leases, membership and reaping, the shared identity, and the state that must be exact
across processes (fairness counters, rate-limit windows, budget holds) under concurrency."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import anyio
import pytest

from noosphere.errors import BudgetExhausted
from noosphere.pool.limits import Admission, Window, admit
from noosphere.store.contract import Holds
from noosphere.store.postgres import PostgresStore
from noosphere.store.postgres.cluster import CreditAsk, RateAsk
from tests.contract.conftest import fresh_database

pytestmark = pytest.mark.postgres


@pytest.fixture
async def pair(pg_url: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    url = fresh_database(pg_url)
    first, second = PostgresStore(url), PostgresStore(url)
    await first.open()
    await second.open()
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def test_a_lease_has_one_holder_until_it_runs_out_or_is_dropped(
    pair: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = pair
    assert await a.take_lease("sweep", "proc-a", 0.5)
    assert not await b.take_lease("sweep", "proc-b", 0.5)
    assert await a.take_lease("sweep", "proc-a", 0.5)  # renewed
    await anyio.sleep(0.7)
    assert await b.take_lease("sweep", "proc-b", 5)  # ran out: taken over
    assert await a.lease_holders() == {"sweep": "proc-b"}
    await a.drop_lease("sweep", "proc-a")  # not a's to drop
    assert await a.lease_holders() == {"sweep": "proc-b"}
    await b.drop_lease("sweep", "proc-b")
    assert await a.take_lease("sweep", "proc-a", 5)


async def test_a_silent_process_is_reaped_with_its_leases_and_holds(
    pair: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = pair
    await a.join_cluster("proc-a", "a:1", "http://a")
    await b.join_cluster("proc-b", "b:1", "http://b")
    assert await a.take_lease("agent:scribe", "proc-a", 60)
    await a.move_credits("proc-a", {"key:k": (30.0, 0.0)})
    await anyio.sleep(0.5)
    assert await b.beat("proc-b")
    assert await b.reap_processes(0.3) == ["proc-a"]
    assert [p.id for p in await b.cluster_processes()] == ["proc-b"]
    assert await b.lease_holders() == {}
    assert await b.credit_holds("key:k") == Holds(0.0, 0.0)
    assert not await a.beat("proc-a")  # it finds out it was taken for dead, and rejoins


async def test_the_first_identity_recorded_is_the_clusters(pair: tuple[PostgresStore, PostgresStore]) -> None:
    a, b = pair
    assert await a.claim_identity("node-first", "pk1") == "node-first"
    assert await b.claim_identity("node-other", "pk2") == "node-first"


async def test_fairness_counters_add_up_across_processes_and_lift_returning_users(
    pair: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = pair
    assert await a.add_service({"user:ann": 10.0}, {}) == {"user:ann": 10.0}
    assert await b.add_service({"user:ann": 5.0, "user:bob": 0.0}, {}) == {"user:ann": 15.0, "user:bob": 0.0}
    # bob returns: lifted to at least the floor, then served.
    assert await a.add_service({"user:bob": 2.0}, {"user:bob": 12.0}) == {"user:bob": 14.0}
    assert await b.add_service({}, {"user:ann": 3.0}) == {"user:ann": 15.0}  # a lift never lowers


async def test_a_rate_limit_holds_exactly_under_concurrent_admissions_from_two_processes(
    pair: tuple[PostgresStore, PostgresStore],
) -> None:
    decisions: list[Admission] = []

    async def ask(store: PostgresStore) -> None:
        def decide(now: float, entries: list[tuple[float, int, int]]) -> Admission:
            return admit(Window.of(entries, now), now, 7, None, 3)

        (decision,) = await store.rate_windows([RateAsk("key_k", decide, lambda d: 3 if d.allowed else None)])
        assert isinstance(decision, Admission)
        decisions.append(decision)

    async with anyio.create_task_group() as group:
        for i in range(20):
            group.start_soon(ask, pair[i % 2])
    assert sum(d.allowed for d in decisions) == 7
    refused = [d for d in decisions if not d.allowed]
    assert all(0 < d.retry_after <= 61 and "7 requests per minute" in d.reason for d in refused)


async def test_budget_holds_never_let_concurrent_reservations_pass_the_budget(
    pair: tuple[PostgresStore, PostgresStore],
) -> None:
    budget, each = 100.0, 15.0
    granted: list[float] = []

    def decide(spent: float, holds: Holds) -> float:
        if budget - spent - holds.pending - holds.reserved < each:
            raise BudgetExhausted("no more")
        return each

    async def reserve(store: PostgresStore, process: str) -> None:
        (credits,) = await store.hold_credits(process, [CreditAsk("key:k", "total", decide)])
        if not isinstance(credits, BudgetExhausted):
            assert isinstance(credits, float)
            granted.append(credits)

    async with anyio.create_task_group() as group:
        for i in range(16):
            group.start_soon(reserve, pair[i % 2], f"proc-{i % 2}")
    assert sum(granted) == 90.0  # six of fifteen fit in a hundred
    a, _ = pair
    held = await a.credit_holds("key:k")
    assert held == Holds(90.0, 0.0)
    await a.move_credits("proc-9", {"key:k": (-15.0, 12.0)})  # one answered, costing less
    assert await a.credit_holds("key:k") == Holds(75.0, 12.0)
    await a.set_credits("proc-9", {"key:k": (0.0, 5.0)})  # a process rejoining states its holds
    assert await a.credit_holds("key:k") == Holds(90.0, 5.0)


async def test_asks_in_one_transaction_see_each_other_and_a_refusal_stops_only_itself(
    pair: tuple[PostgresStore, PostgresStore],
) -> None:
    a, _ = pair

    def up_to(budget: float, each: float) -> Callable[[float, Holds], float]:
        def decide(spent: float, holds: Holds) -> float:
            if budget - spent - holds.reserved - holds.pending < each:
                raise BudgetExhausted(f"{holds.reserved:g} held")
            return each

        return decide

    asks = [CreditAsk("key:a", "total", up_to(25, 10)) for _ in range(3)]
    asks.insert(1, CreditAsk("key:b", "total", up_to(5, 10)))  # another account, refused
    results = await a.hold_credits("proc-0", asks)
    assert results[:3] == [10.0, results[1], 10.0] and isinstance(results[1], BudgetExhausted)
    assert isinstance(results[3], BudgetExhausted) and "20 held" in str(results[3])
    assert await a.credit_holds("key:a") == Holds(20.0, 0.0)

    def once_a_minute(now: float, entries: list[tuple[float, int, int]]) -> Admission:
        return admit(Window.of(entries, now), now, 1, None, 1)

    decisions = await a.rate_windows(
        [RateAsk(k, once_a_minute, lambda d: 1 if d.allowed else None) for k in ("key_x", "key_x", "key_y")]
    )
    assert [d.allowed for d in decisions if isinstance(d, Admission)] == [True, False, True]


async def test_what_one_process_has_seen_the_other_has_seen_until_it_may_be_forgotten(
    pair: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = pair
    assert await a.first_time("nonce:node-x", "n1", 0.3)
    assert not await b.first_time("nonce:node-x", "n1", 0.3)  # a replay through another process
    assert await b.first_time("nonce:node-y", "n1", 0.3)  # another scope
    await anyio.sleep(0.4)
    assert await b.first_time("nonce:node-x", "n1", 60)  # forgotten: new again
    assert await a.forget_seen() == 1  # node-y's has run out; node-x's is kept
    assert not await a.first_time("nonce:node-x", "n1", 60)
