"""The durable bus's mailboxes and topic subscriptions (semantics in ``noosphere.bus.transport``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class MailRow:
    """An envelope on its way into one mailbox."""

    mailbox: str
    id: str
    priority: int
    expires_at: float | None  # epoch seconds
    body: str  # the envelope, JSON


@dataclass(frozen=True)
class ClaimedMail:
    id: str
    body: str
    attempts: int  # deliveries so far, this one included


@dataclass(frozen=True)
class MailCounts:
    mailbox: str
    ready: int
    in_flight: int
    dead: int


class Mailboxes(Protocol):
    """Every method is one transaction."""

    async def enqueue_mail(self, rows: Sequence[MailRow], now: float) -> list[bool]:
        """Insert each row unless its mailbox already holds (or recently acknowledged) its id;
        True where inserted. One transaction."""

    async def claim_mail(
        self, mailbox: str, now: float, lease: float, limit: int, max_attempts: int
    ) -> list[ClaimedMail]:
        """Lease up to ``limit`` visible, unexpired envelopes in priority order (safe against
        concurrent claimers in other processes); envelopes already delivered ``max_attempts``
        times are set aside as dead instead."""

    async def ack_mail(self, mailbox: str, ids: Sequence[str], now: float) -> list[str]:
        """Settle envelopes; returns the ids that were still pending."""

    async def release_mail(self, mailbox: str, ids: Sequence[str], visible_at: float, now: float) -> int:
        """Leased envelopes become visible again at ``visible_at``."""

    async def subscribe(self, subscriber: str, pattern: str) -> None: ...

    async def unsubscribe(self, subscriber: str, pattern: str) -> bool: ...

    async def subscriptions(self, subscriber: str | None = None) -> list[tuple[str, str]]: ...

    async def mail_counts(self, mailbox: str | None, now: float) -> list[MailCounts]: ...

    async def purge_mail(self, now: float, settled_before: float) -> int:
        """Delete expired envelopes and those settled (acked or dead) before ``settled_before``."""
