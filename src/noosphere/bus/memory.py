"""The in-process transport: mailboxes in this process's memory, for agents living in one node
process and for tests. Same semantics as the durable transports; nothing survives a restart."""

from __future__ import annotations

import bisect
import heapq
import itertools
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from noosphere.bus.envelope import Delivery, Envelope
from noosphere.bus.topics import subscribers
from noosphere.bus.transport import Doorbell, MailboxStats

_SEEN_LIMIT = 1_000_000  # acknowledged ids remembered per transport for de-duplication


@dataclass(slots=True)
class _Held:
    envelope: Envelope
    seq: int
    attempts: int = 0
    leased_until: float = 0.0  # 0: ready
    dead: bool = False


@dataclass
class _Mailbox:
    held: dict[str, _Held] = field(default_factory=dict)
    ready: list[tuple[int, int, str]] = field(default_factory=list)  # (-priority, seq, id)
    leases: list[tuple[float, int, str]] = field(default_factory=list)  # (until, seq, id)


class MemoryTransport:
    def __init__(self, max_attempts: int = 10, retention: float = 86_400.0, poll: float = 0.25) -> None:
        self.max_attempts = max_attempts
        self.retention = retention
        self._boxes: dict[str, _Mailbox] = {}
        self._subs: list[tuple[str, str]] = []  # sorted, as the other transports list them
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()  # acked -> when
        self._seq = itertools.count()
        self._bell = Doorbell(poll)

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def _put(self, envelope: Envelope, mailbox: str) -> bool:
        box = self._boxes.setdefault(mailbox, _Mailbox())
        if envelope.id in box.held or self._acked_recently((mailbox, envelope.id)):
            return False
        seq = next(self._seq)
        box.held[envelope.id] = _Held(envelope, seq)
        heapq.heappush(box.ready, (-envelope.priority, seq, envelope.id))
        self._bell.ring(mailbox)
        return True

    def _acked_recently(self, key: tuple[str, str]) -> bool:
        at = self._seen.get(key)
        return at is not None and at > time.time() - self.retention

    async def send(self, envelopes: Sequence[Envelope]) -> list[bool]:
        return [self._put(e, e.recipient) for e in envelopes if e.recipient is not None]

    async def publish(self, envelope: Envelope) -> list[str]:
        assert envelope.topic is not None
        reached = subscribers(self._subs, envelope.topic)
        return [mailbox for mailbox in reached if self._put(envelope.to(mailbox), mailbox)]

    async def receive(self, mailbox: str, limit: int, lease: float, wait: float) -> list[Delivery]:
        async def claim() -> list[Delivery]:
            return self._claim(mailbox, limit, lease)

        return await self._bell.receive(mailbox, wait, claim)

    def _claim(self, mailbox: str, limit: int, lease: float) -> list[Delivery]:
        box = self._boxes.get(mailbox)
        if box is None:
            return []
        now = time.time()
        while box.leases and box.leases[0][0] <= now:  # leases that ran out: ready again
            until, seq, message_id = heapq.heappop(box.leases)
            held = box.held.get(message_id)
            if held is not None and held.leased_until == until:
                held.leased_until = 0.0
                heapq.heappush(box.ready, (-held.envelope.priority, seq, message_id))
        wall = datetime.now(UTC)
        out: list[Delivery] = []
        while box.ready and len(out) < limit:
            _, seq, message_id = heapq.heappop(box.ready)
            held = box.held.get(message_id)
            if held is None or held.leased_until or held.dead:
                continue
            if held.envelope.expired(wall):
                del box.held[message_id]
                continue
            if held.attempts >= self.max_attempts:
                held.dead = True
                continue
            held.attempts += 1
            held.leased_until = now + lease
            heapq.heappush(box.leases, (held.leased_until, seq, message_id))
            out.append(Delivery(held.envelope, mailbox, held.attempts))
        return out

    async def ack(self, mailbox: str, ids: Sequence[str]) -> int:
        box = self._boxes.get(mailbox)
        if box is None:
            return 0
        now = time.time()
        settled = 0
        for message_id in ids:
            if box.held.pop(message_id, None) is not None:
                settled += 1
                self._seen[(mailbox, message_id)] = now
        while len(self._seen) > _SEEN_LIMIT:
            self._seen.popitem(last=False)
        return settled

    async def nack(self, mailbox: str, ids: Sequence[str], delay: float) -> int:
        box = self._boxes.get(mailbox)
        if box is None:
            return 0
        until = time.time() + delay
        released = 0
        for message_id in ids:
            held = box.held.get(message_id)
            if held is not None and held.leased_until and not held.dead:
                held.leased_until = until
                heapq.heappush(box.leases, (until, held.seq, message_id))
                released += 1
        return released

    async def subscribe(self, subscriber: str, pattern: str) -> None:
        if (subscriber, pattern) not in self._subs:
            bisect.insort(self._subs, (subscriber, pattern))

    async def unsubscribe(self, subscriber: str, pattern: str) -> bool:
        if (subscriber, pattern) in self._subs:
            self._subs.remove((subscriber, pattern))
            return True
        return False

    async def subscriptions(self, subscriber: str | None = None) -> list[tuple[str, str]]:
        return [s for s in self._subs if subscriber is None or s[0] == subscriber]

    async def purge(self) -> int:
        wall = datetime.now(UTC)
        forgotten = 0
        for box in self._boxes.values():
            for message_id in [i for i, h in box.held.items() if h.envelope.expired(wall)]:
                del box.held[message_id]
                forgotten += 1
        horizon = time.time() - self.retention
        while self._seen and next(iter(self._seen.values())) < horizon:
            self._seen.popitem(last=False)
            forgotten += 1
        return forgotten

    async def stats(self, mailbox: str | None = None) -> list[MailboxStats]:
        out = []
        for name in sorted(self._boxes):
            if mailbox is not None and name != mailbox:
                continue
            held = self._boxes[name].held.values()
            dead = sum(1 for h in held if h.dead)
            leased = sum(1 for h in held if h.leased_until and not h.dead)
            if held:
                out.append(MailboxStats(name, len(held) - dead - leased, leased, dead))
        return out


__all__ = ["MemoryTransport"]
