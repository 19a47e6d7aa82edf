"""Bus throughput and latency per transport: in-process memory, the durable SQLite mailbox, and NATS
JetStream (a local nats-server with fsync on every message). Targets: ≥ 50k msg/s in-process,
≥ 5k msg/s durable.

Producers send one envelope per call, concurrently (as agents do); one consumer per mailbox
receives batches of up to 100 and acknowledges each batch. Throughput counts envelopes sent,
received and acknowledged, first send to last ack. Latency is send to receive, per envelope.
A last row runs the node's bus (audit entry per message, SQLite) end to end, for scale.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import numpy as np

from bench.report import write_section
from noosphere.bus import Envelope, Kind
from noosphere.bus.transport import Transport

PRODUCERS = 16
MAILBOXES = 4
BATCH = 100


async def _drive(
    send: Callable[[Envelope], Awaitable[object]], transport: Transport, total: int
) -> tuple[float, np.ndarray]:
    latencies: list[float] = []
    per_producer = total // PRODUCERS
    expires = datetime.now(UTC) + timedelta(hours=1)

    async def produce(p: int) -> None:
        for i in range(per_producer):
            envelope = Envelope(
                Kind.EVENT,
                f"producer{p}",
                {"i": i},
                recipient=f"box{(p + i) % MAILBOXES}",
                priority=i % 10,
                expires_at=expires,
            )
            await send(envelope)
            await anyio.lowlevel.checkpoint()  # an agent does other work between messages

    async def consume(box: str, expected: int) -> None:
        done = 0
        while done < expected:
            got = await transport.receive(box, BATCH, 60.0, 5.0)
            now = time.time()
            latencies.extend(now - d.envelope.created_at.timestamp() for d in got)
            await transport.ack(box, [d.envelope.id for d in got])
            done += len(got)

    sent = per_producer * PRODUCERS
    counts = [0] * MAILBOXES
    for p in range(PRODUCERS):
        for i in range(per_producer):
            counts[(p + i) % MAILBOXES] += 1
    start = time.perf_counter()
    async with anyio.create_task_group() as group:
        for b in range(MAILBOXES):
            group.start_soon(consume, f"box{b}", counts[b])
        for p in range(PRODUCERS):
            group.start_soon(produce, p)
    elapsed = time.perf_counter() - start
    return sent / elapsed, np.asarray(latencies) * 1000


async def _ping(
    send: Callable[[Envelope], Awaitable[object]], transport: Transport, n: int = 2000
) -> np.ndarray:
    """Send to receive with one envelope in flight: the transport's own latency, no queueing."""
    latencies: list[float] = []
    sent_at = [0.0]

    async def consume() -> None:
        (got,) = await transport.receive("ping", 1, 60.0, 5.0)
        latencies.append(time.perf_counter() - sent_at[0])
        await transport.ack("ping", [got.envelope.id])

    for i in range(n):
        async with anyio.create_task_group() as group:
            group.start_soon(consume)
            await anyio.lowlevel.checkpoint()  # the consumer is waiting before the send
            sent_at[0] = time.perf_counter()
            await send(Envelope(Kind.EVENT, "pinger", {"i": i}, recipient="ping"))
    return np.asarray(latencies) * 1000


async def _both(
    send: Callable[[Envelope], Awaitable[object]], transport: Transport, total: int
) -> tuple[float, np.ndarray, np.ndarray]:
    rate, loaded = await _drive(send, transport, total)
    return rate, loaded, await _ping(send, transport)


async def _memory(total: int) -> tuple[float, np.ndarray, np.ndarray]:
    from noosphere.bus.memory import MemoryTransport

    transport = MemoryTransport()

    async def send(e: Envelope) -> None:
        await transport.send([e])

    return await _both(send, transport, total)


async def _sqlite(total: int, directory: Path) -> tuple[float, np.ndarray, np.ndarray]:
    from noosphere.bus.durable import StoreTransport
    from noosphere.store.sqlite import SQLiteStore

    store = SQLiteStore(directory / "bus.db")
    await store.open()
    transport = StoreTransport(store)
    try:

        async def send(e: Envelope) -> None:
            await transport.send([e])

        return await _both(send, transport, total)
    finally:
        await transport.close()
        await store.close()


async def _nats(total: int, directory: Path) -> tuple[float, np.ndarray, np.ndarray]:
    from noosphere.bus.nats import NatsTransport
    from noosphere.bus.nats_server import NatsServer

    server = NatsServer(directory / "nats")
    url = server.start()
    transport = NatsTransport(url)
    try:
        await transport.start()

        async def send(e: Envelope) -> None:
            await transport.send([e])

        return await _both(send, transport, total)
    finally:
        await transport.close()
        server.stop()


async def _node(total: int, directory: Path) -> tuple[float, np.ndarray, np.ndarray]:
    from noosphere.config import load_settings
    from noosphere.node import open_node
    from noosphere.testing import FakeEmbedder

    settings = load_settings(None, data_dir=directory / "node")
    async with open_node(settings, embedder=FakeEmbedder()) as node:
        return await _both(node.bus.send, node.bus.transport, total)


async def run() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        for name, total, target, job in [
            ("in-process (memory)", 200_000, "≥ 50,000", lambda n: _memory(n)),
            ("durable SQLite mailbox", 50_000, "≥ 5,000", lambda n: _sqlite(n, base)),
            ("NATS JetStream (fsync always)", 10_000, "—", lambda n: _nats(n, base)),
            ("node bus: SQLite + audit entry", 20_000, "—", lambda n: _node(n, base)),
        ]:
            rate, loaded, idle = await job(total)
            p50, p99 = float(np.percentile(idle, 50)), float(np.percentile(idle, 99))
            l50, l99 = float(np.percentile(loaded, 50)), float(np.percentile(loaded, 99))
            print(f"bus {name}: {rate:,.0f} msg/s; idle p50 {p50:.2f} p99 {p99:.2f} ms")
            rows.append(
                f"| {name} | {total:,} | {rate:,.0f} | {target} | {p50:.2f} | {p99:.2f} "
                f"| {l50:.1f} | {l99:.1f} |"
            )
    body = (
        f"{PRODUCERS} producers send one envelope per call (priorities 0-9) to {MAILBOXES} mailboxes; "
        f"one consumer per mailbox receives up to {BATCH} at a time and acknowledges each batch. "
        "Throughput: envelopes sent, received and acknowledged per second, first send to last ack. "
        "Latency, send to receive: *idle* with one envelope in flight (2,000 in a row, the consumer "
        "already waiting), and *loaded* during the throughput run (includes queueing behind the "
        "backlog the producers build).\n\n"
        "| transport | envelopes | msg/s | target msg/s | idle p50 ms | idle p99 ms | loaded p50 ms "
        "| loaded p99 ms |\n|---|---|---|---|---|---|---|---|\n" + "\n".join(rows)
    )
    write_section("bus", "Message bus throughput and latency", body)
