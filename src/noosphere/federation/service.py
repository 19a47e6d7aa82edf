"""The node's side of federation: who its peers are, checking their signed requests (and
recording refusals in the audit log), and telling them it is alive.

Every ``federation.heartbeat_seconds`` the node sends each peer a signed heartbeat (its id, name,
version and clock); a peer that answers, or that sends a signed request of its own, is heard
from. ``Membership`` decides who is alive, suspect or dead; ``/readyz`` shows it. The kill switch
(``federation.paused`` or ``paused`` on one peer in the config, ``noosphere federation pause``
at run time) stops traffic both ways: nothing is sent, and requests are refused with
``federation_paused``. Peers come from the config and from ``noosphere peers add``; the node
reads both, and the pauses, every heartbeat interval, so a change needs no restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import aiohttp
import anyio
import anyio.abc
import numpy as np
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from numpy.typing import NDArray
from pydantic import ValidationError

from noosphere import __version__
from noosphere.clock import HybridLogicalClock, physical_ms
from noosphere.config import FederationSettings, MemorySettings, PeerSettings
from noosphere.embeddings.base import Embedder
from noosphere.expiring import Expiring
from noosphere.federation.membership import Membership, PeerState
from noosphere.federation.records import ChangesPage, PeerRecord, wire
from noosphere.federation.signing import Refused, Verifier, sign
from noosphere.governance.audit import AuditLog
from noosphere.identity import NodeKey, public_key_from_text
from noosphere.memory.model import Memory
from noosphere.store.contract import ALL_PEERS, FederatedRecords, StoredPeer, Vector

log = logging.getLogger(__name__)


class LocalMemory(Protocol):
    """What pulling needs of the memory service: its embedder, and its clock."""

    @property
    def embedder(self) -> Embedder: ...

    @property
    def clock(self) -> HybridLogicalClock: ...

    @property
    def settings(self) -> MemorySettings: ...

    async def embed(self, texts: Sequence[str]) -> NDArray[np.float32]: ...


HEARTBEAT_PATH = "/federation/v1/heartbeat"
CHANGES_PATH = "/federation/v1/changes"
PAGES_PER_BEAT = 5  # pages pulled from one peer per heartbeat: a long backlog does not hog the loop
RESPONSE_MAX = 64 << 20  # bytes of one answer from a peer
MAX_AHEAD_MS = 60_000  # a record stamped further in the future waits until this node's clock is near
PAGE_SIZE = 200
AUDIT_REFUSALS_EVERY = 10.0  # seconds: one audit entry per kind of refusal from one claimed origin


def effective_peers(
    settings: FederationSettings, stored: Sequence[StoredPeer], paused: set[str]
) -> dict[str, PeerSettings]:
    """The peers in force: the config's, then those added at run time (the config's win on the
    same id), each paused if the config or ``federation pause`` says so."""
    peers = {peer.id: peer for peer in settings.peers}
    for row in stored:
        if row.id not in peers:
            try:
                peers[row.id] = PeerSettings(id=row.id, public_key=row.public_key, url=row.url)
            except ValueError as exc:
                log.warning("federation peer %s in the store is unusable: %s", row.id, exc)
    return {
        peer_id: peer.model_copy(update={"paused": True}) if peer_id in paused and not peer.paused else peer
        for peer_id, peer in peers.items()
    }


class Federation:
    def __init__(
        self,
        settings: FederationSettings,
        key: NodeKey,
        audit: AuditLog,
        name: str,
        records: FederatedRecords,
        memory: LocalMemory,
    ) -> None:
        self.settings, self.key, self.audit, self.name = settings, key, audit, name
        # Federation reads and writes memories only through this: the federated zone's view.
        self.records = records
        self.memory = memory
        self.peers: dict[str, PeerSettings] = {}
        self._keys: dict[str, Ed25519PublicKey] = {}  # parsed once per peer and key
        self.verifier = Verifier(key.id, self._keys.get)
        self.membership = Membership(interval=settings.heartbeat_seconds)
        self.all_paused = settings.paused
        self._adopt(effective_peers(settings, [], set()), set())
        self._refusals_seen: Expiring[tuple[str, str], bool] = Expiring(AUDIT_REFUSALS_EVERY)

    async def refresh(self) -> None:
        """Take up peers added or removed at run time, and pauses, from the store."""
        paused = await self.records.paused()
        self._adopt(effective_peers(self.settings, await self.records.stored_peers(), paused), paused)

    def _adopt(self, peers: dict[str, PeerSettings], paused: set[str]) -> None:
        now = time.monotonic()
        for gone in set(self.peers) - set(peers):
            self.membership.remove(gone)
            self._keys.pop(gone, None)
        for peer_id, peer in peers.items():
            known = self.peers.get(peer_id)
            if known is None or known.public_key != peer.public_key or peer_id not in self._keys:
                self._keys[peer_id] = public_key_from_text(peer.public_key)
            self.membership.add(peer_id, now)
        self.peers = peers
        self.all_paused = self.settings.paused or ALL_PEERS in paused

    def hello(self) -> dict[str, Any]:
        """What a heartbeat says about this node."""
        return {"id": self.key.id, "name": self.name, "version": __version__, "time": time.time()}

    async def changes(self, after: int, limit: int) -> dict[str, Any]:
        """A page of this node's federated change feed, as peers read it."""
        feed = await self.records.federated_changes(after, limit)
        last = feed[-1][0].seq if feed else after
        return {"records": [wire(memory, vector) for memory, vector in feed], "last": last}

    def states(self) -> dict[str, str]:
        return {peer: state.value for peer, state in self.membership.states().items()}

    async def admit(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> str:
        """The peer a request under ``/federation/`` comes from; ``Refused`` (audited) if it does
        not prove it, or if federation with it is paused."""
        try:
            origin = self.verifier.check(method, path, headers, body)
            if self.all_paused or self.peers[origin].paused:
                raise Refused("federation_paused", 503, "federation with this node is paused")
        except Refused as refused:
            await self._audit_refusal(refused, headers.get("x-noosphere-from", ""), path)
            raise
        self.membership.heard(origin, time.monotonic())
        return origin

    async def _audit_refusal(self, refused: Refused, claimed: str, path: str) -> None:
        # One entry per kind of refusal and claimed peer every few seconds: a flood of forged
        # requests must not flood the log. Claims of ids that are not peers count as one, or a
        # caller could write an entry per request by making up a new id each time.
        seen = (refused.code, claimed if claimed in self.peers else "not a peer")
        if self._refusals_seen.get(seen):
            return
        self._refusals_seen.put(seen, True)
        body = {"code": refused.code, "claimed_origin": claimed[:80], "path": path[:200]}
        await self.audit.append("federation", "federation.refused", body)

    async def run(self) -> None:
        """Heartbeats out and liveness decided, and changes pulled from live peers, forever (a
        supervised loop). The check of liveness only ever waits on its timer: heartbeats and pulls
        run beside it, so a slow peer never makes this node think itself late."""
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout_seconds)
        await self.refresh()
        async with aiohttp.ClientSession(timeout=timeout) as session, anyio.create_task_group() as tasks:
            tasks.start_soon(self._beats, session, tasks)
            tasks.start_soon(self._pulls, session)

    async def _beats(self, session: aiohttp.ClientSession, tasks: anyio.abc.TaskGroup) -> None:
        loop = asyncio.get_running_loop()
        interval = self.settings.heartbeat_seconds
        sending: set[str] = set()  # peers whose last heartbeat is still on its way

        async def beat(peer: PeerSettings) -> None:
            try:
                await self._beat(session, peer)
            finally:
                sending.discard(peer.id)

        due = loop.time()
        while True:
            # Judge first, as the check wakes: what this node heard before it, and how late the
            # check itself is (this node's own health).
            lateness = max(0.0, loop.time() - due)
            for peer_id, state in self.membership.tick(time.monotonic(), lateness).items():
                log.warning("federation peer %s is %s", peer_id, state.value)
                if state is PeerState.DEAD:
                    await self.audit.append("federation", "federation.peer_dead", {"peer": peer_id})
            await self.refresh()
            if not self.all_paused:
                for peer in self.peers.values():
                    if not peer.paused and peer.id not in sending:
                        sending.add(peer.id)
                        tasks.start_soon(beat, peer)
            due += interval
            if due < loop.time():  # after a stall, the missed checks are skipped, not run in a burst
                due = loop.time() + interval
            await asyncio.sleep(due - loop.time())

    async def _pulls(self, session: aiohttp.ClientSession) -> None:
        while True:
            if not self.all_paused:
                alive = [
                    peer
                    for peer in self.peers.values()
                    if not peer.paused and self.membership.state(peer.id) is PeerState.ALIVE
                ]
                await asyncio.gather(*(self._pull(session, peer) for peer in alive))
            await asyncio.sleep(self.settings.heartbeat_seconds)

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

    async def _pull(self, session: aiohttp.ClientSession, peer: PeerSettings) -> None:
        """Read the peer's federated changes since last time and apply them (fast path)."""
        try:
            after = await self.records.federation_cursor(peer.id)
            for _ in range(PAGES_PER_BEAT):
                page = await self._page(session, peer, after)
                if page is None:
                    return
                records = await self._usable(peer, page.records)
                ready, cursor = _due(records, max(after, page.last), after)
                await self.records.apply_federated(peer.id, ready, cursor)
                after = cursor
                for memory, _ in ready:
                    self.memory.clock.observe(memory.hlc)  # this node's next stamps come after
                if len(ready) < len(records):
                    log.warning(
                        "federation peer %s sent a record stamped ahead of this clock; deferred", peer.id
                    )
                    return
                if len(page.records) < PAGE_SIZE:
                    return
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("federation peer %s: pulling changes failed: %r", peer.id, exc)

    async def _page(
        self, session: aiohttp.ClientSession, peer: PeerSettings, after: int
    ) -> ChangesPage | None:
        body = orjson.dumps({"after": after, "limit": PAGE_SIZE})
        headers = {**sign(self.key, peer.id, "POST", CHANGES_PATH, body), "content-type": "application/json"}
        async with session.post(peer.url + CHANGES_PATH, data=body, headers=headers) as answer:
            if answer.status != 200:
                log.info("federation peer %s answered %s to a pull", peer.id, answer.status)
                return None
            data = bytearray()
            async for chunk in answer.content.iter_chunked(1 << 16):
                data += chunk
                if len(data) > RESPONSE_MAX:
                    log.warning(
                        "federation peer %s sent a page over %d bytes; ignored", peer.id, RESPONSE_MAX
                    )
                    return None
        try:
            return ChangesPage.model_validate_json(data)
        except ValidationError:
            log.warning("federation peer %s sent a malformed page; ignored", peer.id)
            return None

    async def _usable(
        self, peer: PeerSettings, raw: list[dict[str, Any]]
    ) -> list[tuple[Memory, Vector | None]]:
        """The page's records that pass the checks (a bad one is skipped and logged, so it cannot
        block the feed), with vectors from this node's embedder where the peer's are of another."""
        out: list[tuple[Memory, Vector | None]] = []
        for item in raw:
            try:
                record = PeerRecord.model_validate(item)
                if len(record.content) > self.memory.settings.max_content_chars:  # this node's limit
                    log.warning("federation peer %s sent a record over memory.max_content_chars", peer.id)
                    continue
                out.append(record.pair())
            except ValidationError as exc:
                log.warning(
                    "federation peer %s sent a record this node refuses: %s", peer.id, exc.errors()[:1]
                )
        model, dimension = self.memory.embedder.model_id, self.memory.embedder.dimension
        stale = [
            i
            for i, (memory, vector) in enumerate(out)
            if not memory.tombstone
            and (memory.embed_model != model or vector is None or len(vector) != dimension)
        ]
        if stale:
            vectors = await self.memory.embed([out[i][0].content for i in stale])
            for i, vector in zip(stale, vectors, strict=True):
                out[i] = (out[i][0].model_copy(update={"embed_model": model}), vector)
        return out


def _due(
    records: list[tuple[Memory, Vector | None]], last: int, after: int, now_ms: int | None = None
) -> tuple[list[tuple[Memory, Vector | None]], int]:
    """The records to apply now, and how far the feed is read once they are: up to the first
    record stamped more than ``MAX_AHEAD_MS`` ahead of this node's clock (a peer whose clock runs
    fast, or lies), which is read again later instead of pulling every stamp here into the future."""
    limit = (time.time_ns() // 1_000_000 if now_ms is None else now_ms) + MAX_AHEAD_MS
    for n, (memory, _) in enumerate(records):
        if physical_ms(memory.hlc) > limit:
            return records[:n], records[n - 1][0].seq if n else after
    return records, last


__all__ = ["CHANGES_PATH", "HEARTBEAT_PATH", "Federation", "effective_peers"]
