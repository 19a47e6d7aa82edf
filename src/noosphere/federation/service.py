"""The node's side of federation: who its peers are, checking their signed requests (and
recording refusals in the audit log), and telling them it is alive.

Every ``federation.heartbeat_seconds`` the node sends each peer a signed heartbeat (its id, name,
version and clock); a peer that answers, or that sends a signed request of its own, is heard
from. ``Membership`` decides who is alive, suspect or dead; ``/readyz`` shows it. The kill switch
(``federation.paused``, or ``paused`` on one peer) stops traffic both ways: nothing is sent, and
requests are refused with ``federation_paused``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from noosphere import __version__
from noosphere.config import FederationSettings, PeerSettings
from noosphere.expiring import Expiring
from noosphere.federation.membership import Membership, PeerState
from noosphere.federation.signing import Refused, Verifier, sign
from noosphere.governance.audit import AuditLog
from noosphere.identity import NodeKey, public_key_from_text

log = logging.getLogger(__name__)
HEARTBEAT_PATH = "/federation/v1/heartbeat"
AUDIT_REFUSALS_EVERY = 10.0  # seconds: one audit entry per kind of refusal from one claimed origin


class Federation:
    def __init__(self, settings: FederationSettings, key: NodeKey, audit: AuditLog, name: str) -> None:
        self.settings, self.key, self.audit, self.name = settings, key, audit, name
        self.peers: dict[str, PeerSettings] = {peer.id: peer for peer in settings.peers}
        self._keys: dict[str, Ed25519PublicKey] = {
            peer.id: public_key_from_text(peer.public_key) for peer in settings.peers
        }
        self.verifier = Verifier(key.id, self._public_key)
        self.membership = Membership(interval=settings.heartbeat_seconds)
        now = time.monotonic()
        for peer in self.peers:
            self.membership.add(peer, now)
        self._refusals_seen: Expiring[tuple[str, str], bool] = Expiring(AUDIT_REFUSALS_EVERY)

    def _public_key(self, peer_id: str) -> Ed25519PublicKey | None:
        peer = self.peers.get(peer_id)
        return None if peer is None else self._keys[peer_id]

    def hello(self) -> dict[str, Any]:
        """What a heartbeat says about this node."""
        return {"id": self.key.id, "name": self.name, "version": __version__, "time": time.time()}

    def states(self) -> dict[str, str]:
        return {peer: state.value for peer, state in self.membership.states().items()}

    async def admit(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> str:
        """The peer a request under ``/federation/`` comes from; ``Refused`` (audited) if it does
        not prove it, or if federation with it is paused."""
        try:
            origin = self.verifier.check(method, path, headers, body)
            if self.settings.paused or self.peers[origin].paused:
                raise Refused("federation_paused", 503, "federation with this node is paused")
        except Refused as refused:
            await self._audit_refusal(refused, headers.get("x-noosphere-from", ""), path)
            raise
        self.membership.heard(origin, time.monotonic())
        return origin

    async def _audit_refusal(self, refused: Refused, claimed: str, path: str) -> None:
        # One entry per kind of refusal and claimed origin every few seconds: a flood of forged
        # requests must not flood the log.
        seen = (refused.code, claimed[:80])
        if self._refusals_seen.get(seen):
            return
        self._refusals_seen.put(seen, True)
        body = {"code": refused.code, "claimed_origin": claimed[:80], "path": path[:200]}
        await self.audit.append("federation", "federation.refused", body)

    async def run(self) -> None:
        """Heartbeats out, liveness decided, forever (a supervised loop)."""
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout_seconds)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            loop = asyncio.get_running_loop()
            due = loop.time()
            while True:
                lateness = max(0.0, loop.time() - due)
                if not self.settings.paused:
                    live = [peer for peer in self.peers.values() if not peer.paused]
                    await asyncio.gather(*(self._beat(session, peer) for peer in live))
                for peer, state in self.membership.tick(time.monotonic(), lateness).items():
                    log.warning("federation peer %s is %s", peer, state.value)
                    if state is PeerState.DEAD:
                        await self.audit.append("federation", "federation.peer_dead", {"peer": peer})
                due += self.settings.heartbeat_seconds
                await asyncio.sleep(max(0.0, due - loop.time()))

    async def _beat(self, session: aiohttp.ClientSession, peer: PeerSettings) -> None:
        body = orjson.dumps(self.hello())
        headers = {
            **sign(self.key, peer.id, "POST", HEARTBEAT_PATH, body),
            "content-type": "application/json",
        }
        try:
            async with session.post(peer.url + HEARTBEAT_PATH, data=body, headers=headers) as answer:
                if answer.status == 200:
                    before = self.membership.heard(peer.id, time.monotonic())
                    if before is not None:
                        log.warning("federation peer %s is alive again", peer.id)
                else:
                    log.info("federation peer %s answered %s", peer.id, answer.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("federation peer %s is unreachable: %r", peer.id, exc)


__all__ = ["HEARTBEAT_PATH", "Federation"]
