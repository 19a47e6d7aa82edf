"""The transport contract: where envelopes wait until a consumer acknowledges them.

Three transports implement it: ``MemoryTransport`` (one process, nothing survives a restart),
``StoreTransport`` (the node's SQLite or PostgreSQL store) and ``NatsTransport`` (NATS JetStream,
for several node processes). ``tests/contract/test_bus_contract.py`` runs one suite over all of them.

Semantics every transport keeps:

- A mailbox hands out envelopes in priority order (9 first), oldest first within a priority.
- Delivery is at least once: a received envelope is leased for ``lease`` seconds; unless it is
  acknowledged in time it is delivered again (``attempt`` counts up). After ``max_attempts``
  deliveries it is set aside as dead instead.
- Sending is idempotent by envelope id per mailbox: an id the mailbox already holds, or
  acknowledged within the retention window, is not delivered twice.
- Expired envelopes are never delivered.
- Publishing to a topic puts a copy in the mailbox of every subscriber whose pattern matches.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from noosphere.bus.envelope import Delivery, Envelope


@dataclass(frozen=True)
class MailboxStats:
    mailbox: str
    ready: int  # waiting for a consumer
    in_flight: int  # leased, not yet acknowledged
    dead: int  # delivered max_attempts times without an ack


class Transport(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def send(self, envelopes: Sequence[Envelope]) -> list[bool]:
        """Put each envelope (addressed to a recipient) in its mailbox; True where it was new."""

    async def publish(self, envelope: Envelope) -> list[str]:
        """Copy a topic envelope into every matching subscriber's mailbox; returns those mailboxes."""

    async def receive(self, mailbox: str, limit: int, lease: float, wait: float) -> list[Delivery]:
        """Lease up to ``limit`` envelopes, waiting up to ``wait`` seconds for the first."""

    async def ack(self, mailbox: str, ids: Sequence[str]) -> int:
        """Settle delivered envelopes for good; returns how many were still pending."""

    async def nack(self, mailbox: str, ids: Sequence[str], delay: float) -> int:
        """Give leased envelopes back, to be delivered again after ``delay`` seconds."""

    async def subscribe(self, subscriber: str, pattern: str) -> None: ...

    async def unsubscribe(self, subscriber: str, pattern: str) -> bool: ...

    async def subscriptions(self, subscriber: str | None = None) -> list[tuple[str, str]]:
        """(subscriber, pattern) pairs, sorted."""

    async def stats(self, mailbox: str | None = None) -> list[MailboxStats]:
        """Counts per mailbox that holds anything, sorted by mailbox."""

    async def purge(self) -> int:
        """Forget expired envelopes and settled ones past the retention window; returns how many."""


class Doorbell:
    """Wakes receivers waiting on a mailbox when this process puts something in it. Receivers also
    look again every ``poll`` seconds, for envelopes another process added or leases that ran out."""

    def __init__(self, poll: float) -> None:
        self.poll = poll
        self._bells: dict[str, asyncio.Event] = {}
        self._waiting: dict[str, int] = {}  # receivers per mailbox; a bell lives only while > 0

    def ring(self, mailbox: str) -> None:
        bell = self._bells.pop(mailbox, None)
        if bell is not None:
            bell.set()

    async def receive(
        self, mailbox: str, wait: float, claim: Callable[[], Awaitable[list[Delivery]]]
    ) -> list[Delivery]:
        """``claim()`` until it returns something or ``wait`` seconds have passed."""
        deadline = time.monotonic() + wait
        self._waiting[mailbox] = self._waiting.get(mailbox, 0) + 1
        try:
            while True:
                # Take the bell before looking, so a ring between the look and the wait is not missed.
                bell = self._bells.setdefault(mailbox, asyncio.Event())
                got = await claim()
                remaining = deadline - time.monotonic()
                if got or remaining <= 0:
                    return got
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(bell.wait(), min(remaining, self.poll))
        finally:
            # One-off mailboxes (request inboxes) must not leave a bell behind each.
            self._waiting[mailbox] -= 1
            if not self._waiting[mailbox]:
                del self._waiting[mailbox]
                self._bells.pop(mailbox, None)


__all__ = ["Doorbell", "MailboxStats", "Transport"]
