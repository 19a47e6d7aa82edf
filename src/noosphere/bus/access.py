"""Who may do what on the bus; the REST API, MCP and the CLI all ask here.

A caller sends as its own address (``Principal.mailbox``); only the admin may name another.
A caller receives from, acknowledges in and counts only its own mailbox; the admin any. Model
workers have no access to the bus.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from noosphere.auth.principal import Principal, PrincipalKind
from noosphere.bus.envelope import DEFAULT_PRIORITY, Envelope, Kind, new_id
from noosphere.errors import InvalidRequest, PermissionDenied

MAX_TTL_SECONDS = 365 * 24 * 3600.0


def check_caller(caller: Principal) -> Principal:
    if caller.kind is PrincipalKind.WORKER:
        raise PermissionDenied("model workers have no access to the bus")
    return caller


def sender_for(caller: Principal, requested: str | None) -> str:
    """The sender address an envelope from ``caller`` carries."""
    if requested is not None and requested != caller.mailbox and not check_caller(caller).is_admin:
        raise PermissionDenied("only the admin may send as another address")
    return requested or check_caller(caller).mailbox


def envelope_from(
    caller: Principal,
    kind: Kind,
    payload: dict[str, Any],
    *,
    recipient: str | None = None,
    topic: str | None = None,
    priority: int = DEFAULT_PRIORITY,
    ttl_seconds: float | None = None,
    message_id: str | None = None,
    correlation_id: str | None = None,
    reply_to: str | None = None,
    sender: str | None = None,
) -> Envelope:
    """A checked envelope sent by ``caller`` (as ``sender`` only if it may name one)."""
    if ttl_seconds is not None and not 0 < ttl_seconds <= MAX_TTL_SECONDS:
        raise InvalidRequest(f"ttl_seconds must be more than 0 and at most {MAX_TTL_SECONDS:g} (a year)")
    expires = datetime.now(UTC) + timedelta(seconds=ttl_seconds) if ttl_seconds else None
    return Envelope(
        kind=kind,
        sender=sender_for(caller, sender),
        payload=payload,
        recipient=recipient,
        topic=topic,
        id=message_id or new_id(),
        correlation_id=correlation_id,
        reply_to=reply_to,
        priority=priority,
        expires_at=expires,
    ).checked()


def own_mailbox(caller: Principal, mailbox: str) -> str:
    """``mailbox`` if ``caller`` may read it."""
    if not check_caller(caller).is_admin and mailbox != caller.mailbox:
        raise PermissionDenied(f"{caller.mailbox} may not read mailbox {mailbox}")
    return mailbox


def visible_scope(caller: Principal) -> str | None:
    """The mailbox whose counts and subscriptions ``caller`` sees (None: all)."""
    return None if check_caller(caller).is_admin else caller.mailbox


__all__ = ["check_caller", "envelope_from", "own_mailbox", "sender_for", "visible_scope"]
