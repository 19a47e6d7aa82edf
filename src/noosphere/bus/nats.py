"""The NATS JetStream transport, for deployments with several node processes.

Layout in one JetStream stream (work-queue retention, so an acknowledged envelope is removed):

- An envelope for mailbox M with priority P is published to ``<prefix>.<token(M)>.<P>`` with the
  header ``Nats-Msg-Id: M/<id>``; the stream's duplicate window (the bus retention) drops resends.
- Each (mailbox, priority) has a durable pull consumer with explicit acks, ``ack_wait`` = the lease
  and ``max_deliver`` = ``bus.max_attempts``. The lease is fixed when the consumer is made (the
  first receive from that mailbox); later receives asking for another lease get that one. A
  receive asks the stream which priorities hold anything (one request), then pulls from them
  highest first (``no_wait``: one request each).
- An envelope with an expiry carries ``Nats-TTL``; the server deletes it when it runs out.
- Topic subscriptions live in a JetStream key-value bucket; ``publish`` copies the envelope into
  every matching subscriber's mailbox, as the other transports do.

A delivery's ack subject is kept in a second bucket under (mailbox, envelope id), so any
process sharing the stream can acknowledge or give back an envelope another process handed out
(the processes of a cluster sit behind one address); the process that received it uses the
message it holds.
"""

from __future__ import annotations

import asyncio
import base64
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import nats
import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import KeyNotFoundError, NoKeysError
from nats.js.kv import KeyValue

from noosphere.bus.envelope import MAX_PRIORITY, MIN_PRIORITY, Delivery, Envelope
from noosphere.bus.topics import subscribers
from noosphere.bus.transport import Doorbell, MailboxStats
from noosphere.errors import Unavailable

_INFLIGHT_LIMIT = 100_000  # ack subjects remembered for envelopes this process handed out
_PRIORITIES = range(MAX_PRIORITY, MIN_PRIORITY - 1, -1)


def subject_token(text: str) -> str:
    """A NATS subject token / consumer name for any mailbox or pattern (``.`` ``*`` ``>`` free)."""
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _ack_key(mailbox: str, message_id: str) -> str:
    return f"{subject_token(mailbox)}.{subject_token(message_id)}"


def _untoken(token: str) -> str:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()


class NatsTransport:
    def __init__(
        self,
        url: str,
        stream: str = "NOOSPHERE",
        max_attempts: int = 10,
        retention: float = 86_400.0,
        poll: float = 0.25,
    ) -> None:
        self.url = url
        self.stream = stream
        self.prefix = stream.lower()
        self.max_attempts = max_attempts
        self.retention = retention
        self._bell = Doorbell(poll)
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._subs: KeyValue | None = None
        self._acks: KeyValue | None = None  # (mailbox, envelope id) → the delivery's ack subject
        self._consumers: set[tuple[str, int]] = set()  # (mailbox, priority) known to exist
        self._inflight: dict[tuple[str, str], Msg] = {}
        self._starting = asyncio.Lock()

    # -- plumbing ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect and make sure the stream and the subscription bucket exist. Every operation
        does this on first use, so a process that never touches the bus never connects."""
        async with self._starting:
            if self._js is None:
                await self._connect()

    async def _connect(self) -> None:
        try:
            self._nc = await nats.connect(self.url, connect_timeout=5, max_reconnect_attempts=-1)
        except Exception as exc:
            raise Unavailable(f"cannot reach NATS at {self.url}: {exc}") from exc
        self._js = self._nc.jetstream()
        config = StreamConfig(
            name=self.stream,
            subjects=[f"{self.prefix}.>"],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            duplicate_window=self.retention,
            allow_msg_ttl=True,  # expiring envelopes carry Nats-TTL; the server drops them
        )
        await self._js.add_stream(config)
        self._subs = await self._js.create_key_value(bucket=f"{self.stream}_subscriptions")
        self._acks = await self._js.create_key_value(bucket=f"{self.stream}_deliveries", ttl=self.retention)

    async def close(self) -> None:
        if self._nc is not None:
            await self._nc.drain()
            self._nc = None

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise Unavailable("the NATS transport is not started")
        return self._js

    def _subject(self, mailbox: str, priority: int) -> str:
        return f"{self.prefix}.{subject_token(mailbox)}.{priority}"

    @staticmethod
    def _consumer(mailbox: str, priority: int) -> str:
        return f"m-{subject_token(mailbox)}-{priority}"

    async def _ensure_consumer(self, mailbox: str, priority: int, lease: float) -> None:
        # The lease is the consumer's ack_wait, fixed when the consumer is first made: changing
        # it would also re-time envelopes already leased.
        if (mailbox, priority) in self._consumers:
            return
        try:
            await self.js.consumer_info(self.stream, self._consumer(mailbox, priority))
        except nats.js.errors.NotFoundError:
            pass
        else:
            self._consumers.add((mailbox, priority))
            return
        await self.js.add_consumer(
            self.stream,
            ConsumerConfig(
                durable_name=self._consumer(mailbox, priority),
                filter_subject=self._subject(mailbox, priority),
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=lease,
                max_deliver=self.max_attempts,
            ),
        )
        self._consumers.add((mailbox, priority))

    async def _counts(self, mailbox: str | None) -> dict[tuple[str, int], int]:
        """Envelopes held (ready, leased or dead) per (mailbox, priority)."""
        pattern = f"{self.prefix}.>" if mailbox is None else f"{self.prefix}.{subject_token(mailbox)}.*"
        info = await self.js.stream_info(self.stream, subjects_filter=pattern)
        out = {}
        for subject, count in (info.state.subjects or {}).items():
            _, token, priority = subject.rsplit(".", 2)
            out[(_untoken(token), int(priority))] = count
        return out

    # -- sending -------------------------------------------------------------------------------
    async def _put(self, envelope: Envelope, mailbox: str) -> bool:
        headers = {"Nats-Msg-Id": f"{mailbox}/{envelope.id}"}
        if envelope.expires_at is not None:
            left = (envelope.expires_at - datetime.now(UTC)).total_seconds()
            # Whole seconds at least 1; a receive still checks the exact expiry.
            headers["Nats-TTL"] = f"{max(1, math.ceil(left))}s"
        ack = await self.js.publish(
            self._subject(mailbox, envelope.priority), envelope.to_json(), headers=headers
        )
        if not ack.duplicate:
            self._bell.ring(mailbox)
        return not ack.duplicate

    async def send(self, envelopes: Sequence[Envelope]) -> list[bool]:
        await self.start()
        return list(await asyncio.gather(*(self._put(e, e.recipient) for e in envelopes if e.recipient)))

    async def publish(self, envelope: Envelope) -> list[str]:
        await self.start()
        assert envelope.topic is not None
        reached = subscribers(await self.subscriptions(), envelope.topic)
        return [mailbox for mailbox in reached if await self._put(envelope.to(mailbox), mailbox)]

    # -- receiving -----------------------------------------------------------------------------
    async def receive(self, mailbox: str, limit: int, lease: float, wait: float) -> list[Delivery]:
        await self.start()

        async def claim() -> list[Delivery]:
            return await self._claim(mailbox, limit, lease)

        return await self._bell.receive(mailbox, wait, claim)

    async def _claim(self, mailbox: str, limit: int, lease: float) -> list[Delivery]:
        held = await self._counts(mailbox)
        if not held:
            return []
        assert self._nc is not None
        inbox = self._nc.new_inbox()
        replies = await self._nc.subscribe(inbox)
        out: list[Delivery] = []
        now = datetime.now(UTC)
        try:
            for priority in _PRIORITIES:
                if len(out) >= limit:
                    break
                if not held.get((mailbox, priority)):
                    continue
                await self._ensure_consumer(mailbox, priority, lease)
                for msg in await self._pull(replies, inbox, mailbox, priority, limit - len(out)):
                    envelope = Envelope.from_json(msg.data)
                    if envelope.expired(now):
                        await msg.term()  # never delivered; the stream lets it go
                        continue
                    self._remember(mailbox, envelope.id, msg)
                    out.append(Delivery(envelope, mailbox, msg.metadata.num_delivered))
        finally:
            await replies.unsubscribe()
        # Where any process can settle them (before they are handed out).
        await asyncio.gather(
            *(
                self.acks.put(
                    _ack_key(mailbox, d.envelope.id), self._inflight[(mailbox, d.envelope.id)].reply.encode()
                )
                for d in out
            )
        )
        return out

    async def _pull(self, replies: Any, inbox: str, mailbox: str, priority: int, batch: int) -> list[Msg]:
        assert self._nc is not None
        request = orjson.dumps({"batch": batch, "no_wait": True})
        consumer = self._consumer(mailbox, priority)
        await self._nc.publish(f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{consumer}", request, reply=inbox)
        got: list[Msg] = []
        while len(got) < batch:
            msg = await replies.next_msg(timeout=5)
            if msg.headers and "Status" in msg.headers:  # 404 no messages / 408 request expired
                break
            got.append(msg)
        return got

    def _remember(self, mailbox: str, message_id: str, msg: Msg) -> None:
        self._inflight[(mailbox, message_id)] = msg
        while len(self._inflight) > _INFLIGHT_LIMIT:
            self._inflight.pop(next(iter(self._inflight)))

    async def _ack_subjects(self, mailbox: str, ids: Sequence[str]) -> dict[str, str]:
        """The ack subject of each delivery of ``ids`` still leased (handed out by any process)."""
        await self.start()
        out = {}
        elsewhere = []
        for message_id in ids:
            held = self._inflight.pop((mailbox, message_id), None)
            if held is not None:
                out[message_id] = held.reply
            else:
                elsewhere.append(message_id)
        found = await asyncio.gather(
            *(self.acks.get(_ack_key(mailbox, i)) for i in elsewhere), return_exceptions=True
        )
        for message_id, entry in zip(elsewhere, found, strict=True):
            if isinstance(entry, KeyNotFoundError):
                continue
            if isinstance(entry, BaseException):
                raise entry
            if entry.value:
                out[message_id] = entry.value.decode()
        return out

    async def _forget_deliveries(self, mailbox: str, ids: Sequence[str]) -> None:
        await asyncio.gather(*(self.acks.purge(_ack_key(mailbox, i)) for i in ids), return_exceptions=True)

    async def ack(self, mailbox: str, ids: Sequence[str]) -> int:
        subjects = await self._ack_subjects(mailbox, ids)
        assert self._nc is not None
        nc = self._nc
        # Double acks (the server confirms each is settled), all in flight at once.
        results = await asyncio.gather(
            *(nc.request(subject, b"", timeout=1.0) for subject in subjects.values()), return_exceptions=True
        )
        await self._forget_deliveries(mailbox, list(subjects))
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, nats.errors.TimeoutError):
                raise result
        return sum(1 for r in results if not isinstance(r, BaseException))

    async def nack(self, mailbox: str, ids: Sequence[str], delay: float) -> int:
        subjects = await self._ack_subjects(mailbox, ids)
        assert self._nc is not None
        payload = b"-NAK" + (b" " + orjson.dumps({"delay": int(delay * 10**9)}) if delay > 0 else b"")
        for subject in subjects.values():
            await self._nc.publish(subject, payload)
        await self._forget_deliveries(mailbox, list(subjects))
        if subjects and delay <= 0:
            self._bell.ring(mailbox)
        return len(subjects)

    # -- topics --------------------------------------------------------------------------------
    @property
    def acks(self) -> KeyValue:
        if self._acks is None:
            raise Unavailable("the NATS transport is not started")
        return self._acks

    @property
    def kv(self) -> KeyValue:
        if self._subs is None:
            raise Unavailable("the NATS transport is not started")
        return self._subs

    async def subscribe(self, subscriber: str, pattern: str) -> None:
        await self.start()
        await self.kv.put(f"{subject_token(subscriber)}.{subject_token(pattern)}", b"1")

    async def unsubscribe(self, subscriber: str, pattern: str) -> bool:
        await self.start()
        key = f"{subject_token(subscriber)}.{subject_token(pattern)}"
        try:
            await self.kv.get(key)
        except KeyNotFoundError:
            return False
        await self.kv.delete(key)
        return True

    async def subscriptions(self, subscriber: str | None = None) -> list[tuple[str, str]]:
        await self.start()
        try:
            keys = await self.kv.keys()
        except NoKeysError:
            return []
        pairs = [tuple(_untoken(part) for part in key.split(".", 1)) for key in keys]
        return sorted((s, p) for s, p in pairs if subscriber is None or s == subscriber)

    # -- housekeeping --------------------------------------------------------------------------
    async def stats(self, mailbox: str | None = None) -> list[MailboxStats]:
        await self.start()
        totals: dict[str, list[int]] = {}
        for (box, priority), count in (await self._counts(mailbox)).items():
            ready, in_flight, dead = count, 0, 0
            try:
                info = await self.js.consumer_info(self.stream, self._consumer(box, priority))
            except nats.js.errors.NotFoundError:
                info = None  # nobody received yet: all of it is ready
            if info is not None:
                ready = info.num_pending or 0
                in_flight = min(info.num_ack_pending or 0, count - ready)
                dead = count - ready - in_flight
            row = totals.setdefault(box, [0, 0, 0])
            row[0] += ready
            row[1] += in_flight
            row[2] += dead
        return [MailboxStats(box, *row) for box, row in sorted(totals.items())]

    async def purge(self) -> int:
        # Acknowledged envelopes leave the stream at once (work-queue retention); expired ones
        # are dropped when a receive meets them.
        cutoff = datetime.now(UTC) - timedelta(seconds=self.retention)
        for key in [k for k, m in self._inflight.items() if m.metadata.timestamp < cutoff]:
            del self._inflight[key]
        return 0


__all__ = ["NatsTransport", "subject_token"]
