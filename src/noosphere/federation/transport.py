"""Calling a peer: a signed JSON request under ``/federation/``, and its answer read up to a
bound (a peer is another owner's machine: its answers are never trusted to be small)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from noosphere.config import PeerSettings
from noosphere.federation.signing import sign
from noosphere.identity import NodeKey

log = logging.getLogger(__name__)

RESPONSE_MAX = 64 << 20  # bytes of one answer from a peer


@dataclass
class Traffic:
    """Bytes this node sent to and read from each peer (for the node's metrics)."""

    bytes: dict[tuple[str, str], int] = field(default_factory=dict)  # (peer, "sent"|"received") -> bytes

    def count(self, peer: str, direction: str, size: int) -> None:
        self.bytes[(peer, direction)] = self.bytes.get((peer, direction), 0) + size


async def call(
    session: aiohttp.ClientSession,
    key: NodeKey,
    peer: PeerSettings,
    path: str,
    payload: dict[str, Any],
    seconds: float | None = None,
    traffic: Traffic | None = None,
) -> bytes | None:
    """The body of the peer's answer, or None if it refused or sent too much (logged). Network
    failures raise ``aiohttp.ClientError`` or ``TimeoutError``. ``traffic`` counts the bytes."""
    status, body = await exchange(session, key, peer, path, payload, seconds, traffic)
    if status != 200:
        log.info("federation peer %s answered %s to %s", peer.id, status, path)
        return None
    return body


async def exchange(
    session: aiohttp.ClientSession,
    key: NodeKey,
    peer: PeerSettings,
    path: str,
    payload: dict[str, Any],
    seconds: float | None = None,
    traffic: Traffic | None = None,
) -> tuple[int, bytes | None]:
    """The status and body of the peer's answer, whatever the status; the body is None if the
    peer sent too much (logged). Network failures raise as ``call``'s do."""
    body = orjson.dumps(payload)
    if traffic is not None:
        traffic.count(peer.id, "sent", len(body))
    headers = {**sign(key, peer.id, "POST", path, body), "content-type": "application/json"}
    limit = None if seconds is None else aiohttp.ClientTimeout(total=seconds)
    async with session.post(peer.url + path, data=body, headers=headers, timeout=limit) as answer:
        data = bytearray()
        async for chunk in answer.content.iter_chunked(1 << 16):
            data += chunk
            if traffic is not None:
                traffic.count(peer.id, "received", len(chunk))
            if len(data) > RESPONSE_MAX:
                log.warning(
                    "federation peer %s sent over %d bytes to %s; ignored", peer.id, RESPONSE_MAX, path
                )
                return answer.status, None
        return answer.status, bytes(data)


@contextlib.asynccontextmanager
async def stream(
    session: aiohttp.ClientSession, key: NodeKey, peer: PeerSettings, path: str, payload: dict[str, Any]
) -> AsyncIterator[aiohttp.ClientResponse]:
    """A signed request whose answer is read as it arrives (the caller checks its status)."""
    body = orjson.dumps(payload)
    headers = {**sign(key, peer.id, "POST", path, body), "content-type": "application/json"}
    # No total timeout: an answer streams as long as the model writes; a silent peer is the
    # scheduler's to notice (a stalled job).
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
    async with session.post(peer.url + path, data=body, headers=headers, timeout=timeout) as answer:
        yield answer


__all__ = ["RESPONSE_MAX", "Traffic", "call", "exchange", "stream"]
