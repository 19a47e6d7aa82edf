"""One suite over every bus transport: in-process memory, the SQLite and PostgreSQL stores."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from noosphere.bus.durable import StoreTransport
from noosphere.bus.envelope import Envelope, Kind
from noosphere.bus.memory import MemoryTransport
from noosphere.bus.nats import NatsTransport
from noosphere.bus.transport import Transport
from tests.contract.conftest import open_store

TRANSPORTS = [
    "memory",
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("nats", marks=pytest.mark.nats),
]


@pytest.fixture(params=TRANSPORTS)
async def transport(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Transport]:
    if request.param == "memory":
        chosen: Transport = MemoryTransport(max_attempts=3, poll=0.05)
        await chosen.start()
        yield chosen
        await chosen.close()
        return
    if request.param == "nats":
        # A stream of its own per test: the server is shared by the session.
        stream = "T" + uuid.uuid4().hex[:10].upper()
        chosen = NatsTransport(request.getfixturevalue("nats_url"), stream, max_attempts=3, poll=0.05)
        await chosen.start()
        yield chosen
        await chosen.close()
        return
    store = await open_store(request.param, tmp_path, request)
    chosen = StoreTransport(store, max_attempts=3, poll=0.05)
    await chosen.start()
    try:
        yield chosen
    finally:
        await chosen.close()
        await store.close()


def message(
    recipient: str = "bob", priority: int = 5, n: int = 0, expires_at: datetime | None = None
) -> Envelope:
    return Envelope(
        Kind.EVENT, "alice", {"n": n}, recipient=recipient, priority=priority, expires_at=expires_at
    )


async def test_a_mailbox_hands_out_higher_priorities_first_then_oldest(transport: Transport) -> None:
    sent = [message(priority=p, n=i) for i, p in enumerate([1, 9, 5, 9, 1])]
    assert await transport.send(sent) == [True] * 5
    got = await transport.receive("bob", 10, lease=30, wait=0)
    assert [d.envelope.payload["n"] for d in got] == [1, 3, 2, 0, 4]
    assert all(d.attempt == 1 and d.mailbox == "bob" for d in got)
    assert got[0].envelope == sent[1]


async def test_received_envelopes_are_not_handed_out_twice_while_leased(transport: Transport) -> None:
    await transport.send([message(n=1), message(n=2)])
    first = await transport.receive("bob", 1, lease=30, wait=0)
    second = await transport.receive("bob", 10, lease=30, wait=0)
    assert [d.envelope.payload["n"] for d in first + second] == [1, 2]
    assert await transport.receive("bob", 10, lease=30, wait=0) == []


async def test_an_unacknowledged_envelope_is_delivered_again_after_its_lease(transport: Transport) -> None:
    (sent,) = [message()]
    await transport.send([sent])
    (first,) = await transport.receive("bob", 1, lease=0.2, wait=0)
    again = await transport.receive("bob", 1, lease=30, wait=5)
    assert [d.envelope.id for d in again] == [sent.id]
    assert (first.attempt, again[0].attempt) == (1, 2)


async def test_acknowledged_envelopes_are_never_delivered_again(transport: Transport) -> None:
    await transport.send([message(n=1), message(n=2)])
    got = await transport.receive("bob", 10, lease=0.1, wait=0)
    assert await transport.ack("bob", [got[0].envelope.id]) == 1
    assert await transport.ack("bob", [got[0].envelope.id]) == 0
    later = await transport.receive("bob", 10, lease=30, wait=5)
    assert [d.envelope.payload["n"] for d in later] == [2]


async def test_a_resent_id_is_dropped_while_held_and_after_its_ack(transport: Transport) -> None:
    sent = message()
    assert await transport.send([sent, sent]) == [True, False]
    (got,) = await transport.receive("bob", 10, lease=30, wait=0)
    await transport.ack("bob", [got.envelope.id])
    assert await transport.send([sent]) == [False]
    assert await transport.receive("bob", 10, lease=30, wait=0) == []
    # the same id to another mailbox is another delivery
    assert await transport.send([sent.to("carol")]) == [True]


async def test_nack_gives_an_envelope_back_at_once_or_after_a_delay(transport: Transport) -> None:
    await transport.send([message()])
    (got,) = await transport.receive("bob", 1, lease=30, wait=0)
    assert await transport.nack("bob", [got.envelope.id], delay=0) == 1
    (again,) = await transport.receive("bob", 1, lease=30, wait=0)
    assert again.attempt == 2
    assert await transport.nack("bob", [got.envelope.id], delay=30) == 1
    assert await transport.receive("bob", 1, lease=30, wait=0) == []


async def test_an_envelope_is_set_aside_as_dead_after_max_attempts(transport: Transport) -> None:
    await transport.send([message(n=1), message(n=2)])
    for attempt in (1, 2, 3):
        got = await transport.receive("bob", 1, lease=30, wait=0)
        assert [(d.envelope.payload["n"], d.attempt) for d in got] == [(1, attempt)]
        await transport.nack("bob", [got[0].envelope.id], delay=0)
    got = await transport.receive("bob", 10, lease=30, wait=0)
    assert [d.envelope.payload["n"] for d in got] == [2]
    (stats,) = await transport.stats("bob")
    assert (stats.ready, stats.in_flight, stats.dead) == (0, 1, 1)


async def test_expired_envelopes_are_never_delivered(transport: Transport) -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)
    await transport.send([message(n=1, expires_at=past), message(n=2)])
    got = await transport.receive("bob", 10, lease=30, wait=0)
    assert [d.envelope.payload["n"] for d in got] == [2]


async def test_a_waiting_receiver_wakes_when_an_envelope_arrives(transport: Transport) -> None:
    results: list[int] = []

    async def wait_for_one() -> None:
        got = await transport.receive("bob", 1, lease=30, wait=10)
        results.extend(d.envelope.payload["n"] for d in got)

    async with anyio.create_task_group() as group:
        group.start_soon(wait_for_one)
        await anyio.sleep(0.05)  # let the receiver start waiting on an empty mailbox
        await transport.send([message(n=7)])
    assert results == [7]


async def test_a_receive_with_nothing_to_deliver_returns_empty_after_its_wait(transport: Transport) -> None:
    with anyio.fail_after(5):
        assert await transport.receive("nobody", 5, lease=30, wait=0.1) == []


async def test_publish_copies_to_every_subscriber_whose_pattern_matches(transport: Transport) -> None:
    await transport.subscribe("reviewer", "code.*.review")
    await transport.subscribe("auditor", "code.>")
    await transport.subscribe("auditor", "code.py.review")  # a second match: still one copy
    await transport.subscribe("bystander", "docs.>")
    event = Envelope(Kind.EVENT, "ci", {"pr": 7}, topic="code.py.review")
    assert sorted(await transport.publish(event)) == ["auditor", "reviewer"]
    assert await transport.publish(event) == []  # same id: already held
    for mailbox in ("reviewer", "auditor"):
        (got,) = await transport.receive(mailbox, 10, lease=30, wait=0)
        assert got.envelope.id == event.id
        assert (got.envelope.topic, got.envelope.recipient) == ("code.py.review", mailbox)
    assert await transport.receive("bystander", 10, lease=30, wait=0) == []


async def test_subscriptions_are_listed_and_removed(transport: Transport) -> None:
    await transport.subscribe("a", "x.>")
    await transport.subscribe("b", "y.*")
    assert await transport.subscriptions() == [("a", "x.>"), ("b", "y.*")]
    assert await transport.subscriptions("b") == [("b", "y.*")]
    assert await transport.unsubscribe("a", "x.>") is True
    assert await transport.unsubscribe("a", "x.>") is False
    assert await transport.publish(Envelope(Kind.EVENT, "s", topic="x.1")) == []


async def test_stats_count_ready_in_flight_and_dead_per_mailbox(transport: Transport) -> None:
    await transport.send([message("bob"), message("bob"), message("carol")])
    await transport.receive("bob", 1, lease=30, wait=0)
    stats = await transport.stats()
    assert [(s.mailbox, s.ready, s.in_flight, s.dead) for s in stats] == [
        ("bob", 1, 1, 0),
        ("carol", 1, 0, 0),
    ]


async def test_purge_forgets_expired_envelopes(transport: Transport) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=1)  # NATS keeps time-to-live in whole seconds
    await transport.send([message(n=1, expires_at=soon), message(n=2)])
    with anyio.fail_after(10):
        while True:
            await transport.purge()
            if [(s.mailbox, s.ready) for s in await transport.stats()] == [("bob", 1)]:
                break
            await anyio.sleep(0.05)
    got = await transport.receive("bob", 10, lease=30, wait=0)
    assert [d.envelope.payload["n"] for d in got] == [2]


async def test_concurrent_consumers_of_one_mailbox_never_share_an_envelope(transport: Transport) -> None:
    await transport.send([message(n=i) for i in range(60)])
    seen: list[int] = []

    async def consume() -> None:
        while got := await transport.receive("bob", 7, lease=30, wait=0):
            seen.extend(d.envelope.payload["n"] for d in got)
            await transport.ack("bob", [d.envelope.id for d in got])

    async with anyio.create_task_group() as group:
        for _ in range(4):
            group.start_soon(consume)
    assert sorted(seen) == list(range(60))
