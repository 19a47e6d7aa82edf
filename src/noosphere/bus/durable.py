"""The durable transport: mailboxes in the node's store (SQLite or PostgreSQL).

Envelopes are on disk before ``send`` returns, so they survive a crash or ``kill -9``; leases
that were running at the crash simply run out and the envelopes are delivered again. Concurrent
sends and acks share transactions (group commit). Receivers in this process are woken at once;
envelopes added by another process are seen within ``poll`` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from noosphere.bus.envelope import Delivery, Envelope
from noosphere.bus.topics import subscribers
from noosphere.bus.transport import Doorbell, MailboxStats
from noosphere.groupcommit import GroupCommit
from noosphere.store.contract import MailRow, MemoryStore


def _row(envelope: Envelope, mailbox: str) -> MailRow:
    expires = envelope.expires_at.timestamp() if envelope.expires_at is not None else None
    return MailRow(mailbox, envelope.id, envelope.priority, expires, envelope.to_json().decode())


class StoreTransport:
    def __init__(
        self, store: MemoryStore, max_attempts: int = 10, retention: float = 86_400.0, poll: float = 0.25
    ) -> None:
        self.store = store
        self.max_attempts = max_attempts
        self.retention = retention
        self._bell = Doorbell(poll)
        self._sends: GroupCommit[MailRow, bool] = GroupCommit(self._write)
        self._acks: GroupCommit[tuple[str, str], bool] = GroupCommit(self._settle)

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        await self._sends.close()
        await self._acks.close()

    async def _write(self, rows: list[MailRow]) -> list[bool]:
        inserted = await self.store.enqueue_mail(rows, time.time())
        for row, new in zip(rows, inserted, strict=True):
            if new:
                self._bell.ring(row.mailbox)
        return inserted

    async def _settle(self, keys: list[tuple[str, str]]) -> list[bool]:
        now = time.time()
        by_box: dict[str, list[str]] = {}
        for mailbox, message_id in keys:
            by_box.setdefault(mailbox, []).append(message_id)
        settled: set[tuple[str, str]] = set()
        for mailbox, ids in by_box.items():
            settled.update((mailbox, i) for i in await self.store.ack_mail(mailbox, ids, now))
        return [key in settled for key in keys]

    async def send(self, envelopes: Sequence[Envelope]) -> list[bool]:
        return await self._sends.submit([_row(e, e.recipient) for e in envelopes if e.recipient is not None])

    async def publish(self, envelope: Envelope) -> list[str]:
        assert envelope.topic is not None
        reached = subscribers(await self.store.subscriptions(), envelope.topic)
        inserted = await self._sends.submit([_row(envelope.to(m), m) for m in reached])
        return [mailbox for mailbox, new in zip(reached, inserted, strict=True) if new]

    async def receive(self, mailbox: str, limit: int, lease: float, wait: float) -> list[Delivery]:
        async def claim() -> list[Delivery]:
            claimed = await self.store.claim_mail(mailbox, time.time(), lease, limit, self.max_attempts)
            return [Delivery(Envelope.from_json(c.body), mailbox, c.attempts) for c in claimed]

        return await self._bell.receive(mailbox, wait, claim)

    async def ack(self, mailbox: str, ids: Sequence[str]) -> int:
        return sum(await self._acks.submit([(mailbox, i) for i in ids]))

    async def nack(self, mailbox: str, ids: Sequence[str], delay: float) -> int:
        now = time.time()
        released = await self.store.release_mail(mailbox, ids, now + delay, now)
        if released and delay <= 0:
            self._bell.ring(mailbox)
        return released

    async def subscribe(self, subscriber: str, pattern: str) -> None:
        await self.store.subscribe(subscriber, pattern)

    async def unsubscribe(self, subscriber: str, pattern: str) -> bool:
        return await self.store.unsubscribe(subscriber, pattern)

    async def subscriptions(self, subscriber: str | None = None) -> list[tuple[str, str]]:
        return await self.store.subscriptions(subscriber)

    async def stats(self, mailbox: str | None = None) -> list[MailboxStats]:
        counts = await self.store.mail_counts(mailbox, time.time())
        return [MailboxStats(c.mailbox, c.ready, c.in_flight, c.dead) for c in counts]

    async def purge(self) -> int:
        """Forget expired envelopes and settled ones past the retention window."""
        now = time.time()
        return await self.store.purge_mail(now, now - self.retention)


__all__ = ["StoreTransport"]
