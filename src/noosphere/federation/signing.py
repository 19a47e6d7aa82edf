"""Signed node-to-node requests.

Every request under ``/federation/`` carries its origin and destination node ids, a timestamp, a
random nonce and an Ed25519 signature, by the origin's node key, over those, the method, the path
(with its query) and the SHA-256 of the body. The receiver refuses, with a stable code:

- ``unsigned``: a header is missing or malformed (401);
- ``unknown_peer``: the origin is not a configured peer (401);
- ``misdirected``: the destination is another node (403): a request signed for one peer cannot
  be replayed against another;
- ``stale``: the timestamp is more than ``SKEW`` seconds from the receiver's clock (401);
- ``bad_signature``: the signature does not cover what arrived (401): any change to the method,
  path, headers above or body;
- ``replayed``: the same origin used the nonce before, within the window (401).

Nonces are remembered until their request would be stale anyway, so a replay inside the window
is caught and the memory needed is bounded by the window. Written here rather than with an HTTP
message-signature library because none on the node's dependency list signs with Ed25519 over a
body digest; the format is small and fixed.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from noosphere.identity import NodeKey, verify

SKEW = 60.0  # seconds a request's timestamp may differ from the receiver's clock
DOMAIN = b"noosphere-federation-v1"
FROM, TO, TIME, NONCE, SIGNATURE = (
    "x-noosphere-from",
    "x-noosphere-to",
    "x-noosphere-time",
    "x-noosphere-nonce",
    "x-noosphere-signature",
)
NONCE_BYTES = 16
NONCES_PER_PEER = 100_000  # in one window; past it a peer's requests wait (``busy``)


class Refused(Exception):
    """A request that does not prove where it comes from; ``code`` and ``status`` are stable."""

    def __init__(self, code: str, status: int, message: str) -> None:
        super().__init__(message)
        self.code, self.status, self.message = code, status, message


def message(method: str, path: str, origin: str, destination: str, at: int, nonce: str, body: bytes) -> bytes:
    """What the signature covers, one field per line."""
    fields = [method.upper(), path, origin, destination, str(at), nonce, hashlib.sha256(body).hexdigest()]
    return DOMAIN + b"\n" + "\n".join(fields).encode()


def sign(
    key: NodeKey,
    destination: str,
    method: str,
    path: str,
    body: bytes,
    clock: Callable[[], float] = time.time,
) -> dict[str, str]:
    """The headers that sign a request from ``key``'s node to ``destination``."""
    at = int(clock())
    nonce = base64.urlsafe_b64encode(secrets.token_bytes(NONCE_BYTES)).decode().rstrip("=")
    signature = key.sign(message(method, path, key.id, destination, at, nonce, body))
    return {
        FROM: key.id,
        TO: destination,
        TIME: str(at),
        NONCE: nonce,
        SIGNATURE: base64.b64encode(signature).decode(),
    }


@dataclass
class _Window:
    """The nonces one peer used within the window, with when each may be forgotten."""

    seen: set[str]
    expiries: list[tuple[float, str]]


class Verifier:
    def __init__(
        self,
        own_id: str,
        peers: Callable[[str], Ed25519PublicKey | None],
        clock: Callable[[], float] = time.time,
        per_peer: int = NONCES_PER_PEER,
    ) -> None:
        self.own_id = own_id
        self._peers = peers  # a peer's public key by node id; None: not a peer (or removed)
        self._clock = clock
        self._per_peer = per_peer
        self._windows: dict[str, _Window] = {}

    def check(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> str:
        """The origin's node id, if the request proves it; ``Refused`` otherwise. ``headers``
        with lower-case names."""
        values = [headers.get(name) for name in (FROM, TO, TIME, NONCE, SIGNATURE)]
        origin, destination, at_text, nonce, signature_text = values
        if (
            origin is None
            or destination is None
            or at_text is None
            or nonce is None
            or signature_text is None
        ):
            raise Refused("unsigned", 401, "federation requests must be signed by a peer node")
        origin, destination, at_text, nonce, signature_text = (str(value) for value in values)
        try:
            at = int(at_text)
            signature = base64.b64decode(signature_text, validate=True)
        except ValueError:
            raise Refused("unsigned", 401, "malformed federation signature headers") from None
        if not 8 <= len(nonce) <= 64 or not nonce.isascii():
            raise Refused("unsigned", 401, "malformed federation nonce")
        public = self._peers(origin)
        if public is None:
            raise Refused("unknown_peer", 401, f"{origin[:80]!r} is not a peer of this node")
        if destination != self.own_id:
            raise Refused(
                "misdirected", 403, f"the request was signed for {destination[:80]!r}, not this node"
            )
        now = self._clock()
        if abs(now - at) > SKEW:
            raise Refused("stale", 401, f"the request's time is {now - at:+.0f}s off this node's clock")
        if not verify(public, signature, message(method, path, origin, destination, at, nonce, body)):
            raise Refused("bad_signature", 401, "the signature does not match the request")
        self._remember(origin, nonce, at + SKEW, now)
        return origin

    def _remember(self, origin: str, nonce: str, forget_at: float, now: float) -> None:
        window = self._windows.setdefault(origin, _Window(set(), []))
        while window.expiries and window.expiries[0][0] < now:
            window.seen.discard(heapq.heappop(window.expiries)[1])
        if nonce in window.seen:
            raise Refused("replayed", 401, "this request was received before")
        if len(window.seen) >= self._per_peer:
            raise Refused("busy", 429, "too many requests from this peer within the replay window")
        window.seen.add(nonce)
        heapq.heappush(window.expiries, (forget_at, nonce))


__all__ = ["SKEW", "Refused", "Verifier", "message", "sign"]
