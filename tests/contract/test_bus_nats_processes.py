"""The NATS transport as several node processes use it: each process has its own connection to
one stream, and clients reach whichever process a load balancer picks."""

from __future__ import annotations

import uuid

import pytest

from noosphere.bus.envelope import Envelope, Kind
from noosphere.bus.nats import NatsTransport

pytestmark = pytest.mark.nats


async def test_an_envelope_received_through_one_process_is_settled_through_another(nats_url: str) -> None:
    stream = "T" + uuid.uuid4().hex[:10].upper()
    first = NatsTransport(nats_url, stream, max_attempts=3, poll=0.05)
    second = NatsTransport(nats_url, stream, max_attempts=3, poll=0.05)
    await first.start()
    await second.start()
    try:
        await first.send([Envelope(Kind.EVENT, "alice", {"n": n}, recipient="bob") for n in (1, 2)])
        one, two = await first.receive("bob", 10, lease=30, wait=1)
        assert await second.ack("bob", [one.envelope.id]) == 1
        assert await second.nack("bob", [two.envelope.id], 0) == 1
        again = await second.receive("bob", 10, lease=30, wait=2)
        assert [d.envelope.payload["n"] for d in again] == [2]  # given back; the acked one is gone
        assert again[0].attempt == 2
        assert await first.ack("bob", [again[0].envelope.id]) == 1  # and back through the first
        assert await second.receive("bob", 10, lease=30, wait=0) == []
    finally:
        await first.close()
        await second.close()
