"""Typed envelopes: what travels on the bus, and how it is checked at the edge.

An envelope goes to exactly one of a mailbox (``recipient``) or a ``topic``. Mailbox addresses are
agent names, principal ids (``user:alice``) or reply inboxes (``_inbox.<id>``); topics are
dot-separated tokens (see ``topics.py``). Priority runs from 0 (lowest) to 9; a mailbox hands out
higher priorities first and, within one priority, oldest first.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import orjson

from noosphere.bus.topics import check_topic
from noosphere.errors import InvalidRequest


class Kind(StrEnum):
    REQUEST = "REQUEST"
    RESPONSE = "RESPONSE"
    COMMAND = "COMMAND"
    ACK = "ACK"
    EVENT = "EVENT"
    TASK_DELEGATE = "TASK_DELEGATE"
    TASK_ACCEPT = "TASK_ACCEPT"
    TASK_REJECT = "TASK_REJECT"
    TASK_COMPLETE = "TASK_COMPLETE"
    ESCALATE = "ESCALATE"
    STATUS = "STATUS"
    HEARTBEAT = "HEARTBEAT"
    CHECKPOINT = "CHECKPOINT"


MIN_PRIORITY = 0
MAX_PRIORITY = 9
DEFAULT_PRIORITY = 5
INBOX_PREFIX = "_inbox."

_ADDRESS = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:@-]{0,199}")
_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


def new_id() -> str:
    return uuid.uuid4().hex


def check_address(address: str) -> str:
    if not _ADDRESS.fullmatch(address):
        raise InvalidRequest(
            f"invalid mailbox address {address!r}: use letters, digits and _ . : @ - (at most 200)"
        )
    return address


def inbox_for(request_id: str) -> str:
    """The mailbox that receives the responses to one request."""
    return INBOX_PREFIX + request_id


@dataclass(frozen=True, slots=True)
class Envelope:
    kind: Kind
    sender: str
    payload: dict[str, Any] = field(default_factory=dict)
    recipient: str | None = None
    topic: str | None = None
    id: str = field(default_factory=new_id)
    correlation_id: str | None = None  # the envelope this one answers or continues
    reply_to: str | None = None  # where responses go (request/reply sets an inbox)
    priority: int = DEFAULT_PRIORITY
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    expires_at: datetime | None = None

    def checked(self) -> Envelope:
        """This envelope if it is well formed; ``InvalidRequest`` naming the problem otherwise."""
        if (self.recipient is None) == (self.topic is None):
            raise InvalidRequest("an envelope needs exactly one of recipient or topic")
        if self.recipient is not None:
            check_address(self.recipient)
        if self.topic is not None:
            check_topic(self.topic)
        check_address(self.sender)
        if self.reply_to is not None:
            check_address(self.reply_to)
        for name, value in (("id", self.id), ("correlation_id", self.correlation_id)):
            if value is not None and not _ID.fullmatch(value):
                raise InvalidRequest(f"invalid {name} {value!r}: 1-128 letters, digits and _ . : -")
        if not MIN_PRIORITY <= self.priority <= MAX_PRIORITY:
            raise InvalidRequest(f"priority must be {MIN_PRIORITY}-{MAX_PRIORITY}, got {self.priority}")
        if self.expires_at is not None and self.expires_at.tzinfo is None:
            raise InvalidRequest("expires_at needs a time zone")
        return self

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def to(self, recipient: str) -> Envelope:
        """This envelope addressed to one mailbox (a topic fan-out keeps the id and the topic)."""
        return replace(self, recipient=recipient)

    def answer(
        self, kind: Kind, sender: str, payload: dict[str, Any], ttl: timedelta | None = None
    ) -> Envelope:
        """A reply to this envelope: to its ``reply_to`` (or its sender), correlated by its id."""
        expires = datetime.now(UTC) + ttl if ttl is not None else self.expires_at
        return Envelope(
            kind=kind,
            sender=sender,
            payload=payload,
            recipient=self.reply_to or self.sender,
            correlation_id=self.id,
            priority=self.priority,
            expires_at=expires,
        )

    def to_json(self) -> bytes:
        return orjson.dumps(self.as_dict())

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind.value,
            "sender": self.sender,
            "recipient": self.recipient,
            "topic": self.topic,
            "correlation_id": self.correlation_id,
            "reply_to": self.reply_to,
            "priority": self.priority,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "payload": self.payload,
        }

    @classmethod
    def from_json(cls, data: bytes | str) -> Envelope:
        raw = orjson.loads(data)
        expires = raw["expires_at"]
        return cls(
            id=raw["id"],
            kind=Kind(raw["kind"]),
            sender=raw["sender"],
            recipient=raw["recipient"],
            topic=raw["topic"],
            correlation_id=raw["correlation_id"],
            reply_to=raw["reply_to"],
            priority=raw["priority"],
            created_at=datetime.fromisoformat(raw["created_at"]),
            expires_at=datetime.fromisoformat(expires) if expires is not None else None,
            payload=raw["payload"],
        )


@dataclass(frozen=True, slots=True)
class Delivery:
    """An envelope handed to a consumer. Until ``ack``, it comes back after the lease runs out."""

    envelope: Envelope
    mailbox: str
    attempt: int  # 1 on first delivery


__all__ = [
    "DEFAULT_PRIORITY",
    "INBOX_PREFIX",
    "MAX_PRIORITY",
    "MIN_PRIORITY",
    "Delivery",
    "Envelope",
    "Kind",
    "check_address",
    "inbox_for",
    "new_id",
]
