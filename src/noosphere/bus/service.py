"""The bus: one front over a transport that checks envelopes, records every message in the audit
log, and adds request/reply.

Request/reply: ``request`` sends a REQUEST whose ``reply_to`` is a fresh inbox and waits there for
the answer; the request expires when the caller stops waiting, so a late consumer never acts on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from noosphere.bus.durable import StoreTransport
from noosphere.bus.envelope import Delivery, Envelope, Kind, inbox_for
from noosphere.bus.memory import MemoryTransport
from noosphere.bus.topics import check_pattern
from noosphere.bus.transport import MailboxStats, Transport
from noosphere.config import BusSettings
from noosphere.digest import sha256_json
from noosphere.errors import InvalidRequest, TimedOut
from noosphere.governance.audit import AuditLog
from noosphere.observe import Observer, timed
from noosphere.store.contract import MemoryStore


@dataclass(frozen=True)
class Sent:
    id: str
    delivered_to: list[str]  # mailboxes that got a new copy
    duplicate: bool  # the recipient's mailbox already had this id: nothing was sent


class Bus:
    subsystem = "bus"
    observer: Observer | None = None  # the node's metrics, once it runs (``observe.py``)

    def __init__(self, transport: Transport, settings: BusSettings, audit: AuditLog | None = None) -> None:
        self.transport = transport
        self.settings = settings
        self.audit = audit

    async def start(self) -> None:
        await self.transport.start()

    async def close(self) -> None:
        await self.transport.close()

    async def _record(self, envelope: Envelope, reached: int) -> None:
        if self.audit is None:
            return
        await self.audit.append(
            envelope.sender,
            "message",
            {
                "id": envelope.id,
                "type": envelope.kind.value,
                "to": envelope.recipient or f"topic:{envelope.topic}",
                "correlation_id": envelope.correlation_id,
                "priority": envelope.priority,
                "payload_sha256": sha256_json(envelope.payload),
                "delivered": reached,
            },
        )

    # -- sending -------------------------------------------------------------------------------
    @timed("send")
    async def send(self, envelope: Envelope) -> bool:
        """Put an envelope in its recipient's mailbox; False if that mailbox already had its id."""
        envelope.checked()
        if envelope.recipient is None:
            raise InvalidRequest("send needs a recipient; use publish for a topic")
        (new,) = await self.transport.send([envelope])
        if new:
            await self._record(envelope, 1)
        return new

    @timed("publish")
    async def publish(self, envelope: Envelope) -> list[str]:
        """Copy a topic envelope into every subscriber's mailbox; returns the mailboxes it reached."""
        envelope.checked()
        if envelope.topic is None:
            raise InvalidRequest("publish needs a topic; use send for a mailbox")
        reached = await self.transport.publish(envelope)
        await self._record(envelope, len(reached))
        return reached

    async def deliver(self, envelope: Envelope) -> Sent:
        """Send to the envelope's recipient or publish to its topic, whichever it names."""
        if envelope.recipient is None:
            return Sent(envelope.id, await self.publish(envelope), duplicate=False)
        new = await self.send(envelope)
        return Sent(envelope.id, [envelope.recipient] if new else [], duplicate=not new)

    @timed("request")
    async def request(self, envelope: Envelope, within: float | None = None) -> Envelope:
        """Send a REQUEST and wait for its RESPONSE; ``TimedOut`` if none comes ``within`` seconds
        (default: the ``bus.request_timeout_seconds`` setting)."""
        wait = within if within is not None else self.settings.request_timeout_seconds
        deadline = datetime.now(UTC) + timedelta(seconds=wait)
        request = replace(
            envelope,
            kind=Kind.REQUEST,
            reply_to=inbox_for(envelope.id),
            expires_at=min(envelope.expires_at or deadline, deadline),
        )
        await self.send(request)
        inbox = inbox_for(request.id)
        got = await self.transport.receive(inbox, 1, self.settings.lease_seconds, wait)
        if not got:
            raise TimedOut(f"no response to request {request.id} from {request.recipient} within {wait:g} s")
        await self.transport.ack(inbox, [got[0].envelope.id])
        return got[0].envelope

    @timed("reply")
    async def reply(
        self, request: Envelope, sender: str, payload: dict[str, Any], kind: Kind = Kind.RESPONSE
    ) -> Envelope:
        answer = request.answer(kind, sender, payload)
        await self.send(answer)
        return answer

    # -- receiving -----------------------------------------------------------------------------
    @timed("receive")
    async def receive(
        self, mailbox: str, limit: int = 10, wait: float = 0.0, lease: float | None = None
    ) -> list[Delivery]:
        if not 1 <= limit <= 1000:
            raise InvalidRequest("limit must be 1-1000")
        if wait < 0 or wait > self.settings.max_wait_seconds:
            raise InvalidRequest(f"wait must be 0-{self.settings.max_wait_seconds:g} seconds")
        held = self.settings.lease_seconds if lease is None else lease
        if held <= 0:
            raise InvalidRequest("lease must be positive")
        return await self.transport.receive(mailbox, limit, held, wait)

    @timed("ack")
    async def ack(self, mailbox: str, ids: Sequence[str]) -> int:
        return await self.transport.ack(mailbox, ids) if ids else 0

    @timed("nack")
    async def nack(self, mailbox: str, ids: Sequence[str], delay: float = 0.0) -> int:
        if delay < 0:
            raise InvalidRequest("delay must not be negative")
        return await self.transport.nack(mailbox, ids, delay) if ids else 0

    # -- topics --------------------------------------------------------------------------------
    async def subscribe(self, subscriber: str, pattern: str) -> None:
        await self.transport.subscribe(subscriber, check_pattern(pattern))

    async def unsubscribe(self, subscriber: str, pattern: str) -> bool:
        return await self.transport.unsubscribe(subscriber, pattern)

    async def subscriptions(self, subscriber: str | None = None) -> list[tuple[str, str]]:
        return await self.transport.subscriptions(subscriber)

    async def stats(self, mailbox: str | None = None) -> list[MailboxStats]:
        return await self.transport.stats(mailbox)

    async def purge(self) -> int:
        return await self.transport.purge()


def create_transport(settings: BusSettings, store: MemoryStore) -> Transport:
    retention = settings.retention_hours * 3600
    if settings.transport == "memory":
        return MemoryTransport(settings.max_attempts, retention, settings.poll_seconds)
    if settings.transport == "nats":
        from noosphere.bus.nats import NatsTransport

        return NatsTransport(settings.nats_url, settings.nats_stream, settings.max_attempts, retention)
    return StoreTransport(store, settings.max_attempts, retention, settings.poll_seconds)


__all__ = ["Bus", "Sent", "create_transport"]
