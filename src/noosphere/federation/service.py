"""The node's side of federation: who its peers are, checking their signed requests (and
recording refusals in the audit log), telling them it is alive, and running memory sync
(``sync.py``) with the live ones.

Every ``federation.heartbeat_seconds`` the node sends each peer a signed heartbeat (``Hello``: its
id, name, version, clock, load, and the models with free capacity, agents and zones it offers
peers); the peer answers with its own. A peer that answers, or that sends a signed request of its
own, is heard from. ``Membership`` decides who is alive, suspect or dead; ``/readyz`` shows it.
The kill switch (``federation.paused`` or ``paused`` on one peer in the config, ``noosphere federation pause``
at run time) stops traffic both ways: nothing is sent, and requests are refused with
``federation_paused``. Peers come from the config and from ``noosphere peers add``; the node
reads both, and the pauses, every heartbeat interval, so a change needs no restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import aiohttp
import anyio
import anyio.abc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from noosphere import __version__
from noosphere.config import FederationSettings, PeerSettings
from noosphere.errors import NoosphereError
from noosphere.expiring import Expiring
from noosphere.federation.forwarding import Forwarding
from noosphere.federation.membership import Membership, PeerState
from noosphere.federation.records import AgentCapacity, Hello, ModelCapacity
from noosphere.federation.search import ask
from noosphere.federation.signing import NONCE, SKEW, Refused, Verifier
from noosphere.federation.sync import LocalMemory, Send, Sync
from noosphere.federation.tasks import TaskDesk
from noosphere.federation.transport import Traffic, call
from noosphere.federation.witness import Witness
from noosphere.governance.audit import AuditLog
from noosphere.identity import NodeKey, public_key_from_text
from noosphere.memory.model import SearchHit, SearchQuery
from noosphere.pool.limits import RateLimiter
from noosphere.store.contract import ALL_PEERS, FederatedRecords, StoredPeer

log = logging.getLogger(__name__)


HEARTBEAT_PATH = "/federation/v1/heartbeat"
DOORBELL_PATH = "/federation/v1/doorbell"
RING_COALESCE_SECONDS = 0.05  # writes within this long of each other share one doorbell
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


class Offers:
    """The models this node offers its peers, as its heartbeats say (its agents come from the
    ``TaskDesk``, per peer)."""

    def __init__(self, models: Sequence[ModelCapacity] = (), load: float = 0.0) -> None:
        self.models, self.load = models, load


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
        self.sync = Sync(key, records, memory)
        self.witness = Witness(records, audit)
        self.sync.changed = self.ring
        self.peers: dict[str, PeerSettings] = {}
        self._keys: dict[str, Ed25519PublicKey] = {}  # parsed once per peer and key
        self.verifier = Verifier(key.id, self._keys.get)
        self.membership = Membership(interval=settings.heartbeat_seconds)
        self.traffic = Traffic()  # bytes to and from each peer (the node's metrics)
        self.synced_at: dict[str, float] = {}  # when each peer's change feed was last read to its end
        self.reconciled_at: dict[str, float] = {}  # when each peer was last reconciled (repair)
        self.limiter = RateLimiter()  # requests per peer and minute
        self.all_paused = settings.paused
        self._adopt(effective_peers(settings, [], set()), set())
        self._refusals_seen: Expiring[tuple[str, str], bool] = Expiring(AUDIT_REFUSALS_EVERY)
        self.heard: dict[str, Hello] = {}  # each peer's last heartbeat
        self._session: aiohttp.ClientSession | None = None  # while ``run`` runs
        self.forwarding: Forwarding | None = None  # set once the pool is up
        self.desk: TaskDesk | None = None  # peers' tasks for this node's agents, once agents run
        self._ringing = asyncio.Event()  # federated records changed here: tell the peers
        self._woken = asyncio.Event()  # a peer rang: pull now
        self._rung: set[str] = set()  # the peers that rang since the last pull
        self._offers: Callable[[], Offers] = lambda: Offers()
        # In a cluster: records (scope, key) for a while; False if any process has already (a
        # replayed request, or a retried forwarded chat, reaching another process).
        self.first_time: Callable[[str, str, float], Awaitable[bool]] | None = None

    def advertise(self, offers: Callable[[], Offers]) -> None:
        """Where heartbeats read what this node offers its peers (set once the pool is up)."""
        self._offers = offers

    async def refresh(self) -> None:
        """Take up peers added or removed at run time, and pauses, from the store."""
        paused = await self.records.paused()
        self._adopt(effective_peers(self.settings, await self.records.stored_peers(), paused), paused)

    def _adopt(self, peers: dict[str, PeerSettings], paused: set[str]) -> None:
        now = time.monotonic()
        for gone in set(self.peers) - set(peers):
            self.membership.remove(gone)
            self._keys.pop(gone, None)
            self.heard.pop(gone, None)
        for peer_id, peer in peers.items():
            known = self.peers.get(peer_id)
            if known is None or known.public_key != peer.public_key or peer_id not in self._keys:
                self._keys[peer_id] = public_key_from_text(peer.public_key)
            self.membership.add(peer_id, now)
        self.peers = peers
        self.all_paused = self.settings.paused or ALL_PEERS in paused

    async def hello(self, peer: PeerSettings) -> Hello:
        """What a heartbeat to ``peer`` says about this node: its models only if the peer may
        forward chats here, its agents only if it may forward agent tasks."""
        offers = self._offers()
        agents: list[AgentCapacity] = []
        if self.desk is not None and peer.forward_agents:
            try:
                agents = await self.desk.offers(peer)
            except NoosphereError as exc:
                log.warning("listing the agents offered to %s: %s (%s)", peer.id, exc.message, exc.code)
        return Hello(
            id=self.key.id,
            name=self.name,
            version=__version__,
            time=time.time(),
            load=offers.load,
            models=list(offers.models) if peer.forward_chat else [],
            agents=agents,
            zones=["federated"],
        )

    def greeted(self, peer: str, hello: Hello) -> None:
        """Keep what a peer's heartbeat says (its id is the signer's, whatever the body claims)."""
        self.heard[peer] = hello.model_copy(update={"id": peer})

    def states(self) -> dict[str, str]:
        return {peer: state.value for peer, state in self.membership.states().items()}

    async def admit(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> str:
        """The peer a request under ``/federation/`` comes from; ``Refused`` (audited) if it does
        not prove it, or if federation with it is paused."""
        try:
            origin = self.verifier.check(method, path, headers, body)
            if self.first_time is not None and not await self.first_time(
                f"nonce:{origin}", headers.get(NONCE, ""), 2 * SKEW
            ):
                raise Refused("replayed", 401, "this request was received before")
            if self.all_paused or self.peers[origin].paused:
                raise Refused("federation_paused", 503, "federation with this node is paused")
            rpm = self.settings.requests_per_minute_per_peer
            admission = self.limiter.check(origin, rpm, None, 0)
            if not admission.allowed:
                raise Refused(
                    "rate_limited",
                    429,
                    f"over {rpm} requests per minute; retry in {admission.retry_after:.0f} s",
                )
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
            self._session = session
            tasks.start_soon(self._beats, session, tasks)
            tasks.start_soon(self._pulls, session)
            tasks.start_soon(self._doorbells, session, tasks)
            tasks.start_soon(self._every, self.settings.repair_seconds, session, self._repair)
            tasks.start_soon(self._every, self.settings.witness_seconds, session, self._witness, self.live)

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
            if self.forwarding is not None:
                self.forwarding.refresh(self._forwardable())
            if not self.all_paused:
                for peer in self.peers.values():
                    if not peer.paused and peer.id not in sending:
                        sending.add(peer.id)
                        tasks.start_soon(beat, peer)
            due += interval
            if due < loop.time():  # after a stall, the missed checks are skipped, not run in a burst
                due = loop.time() + interval
            await asyncio.sleep(due - loop.time())

    def session(self) -> aiohttp.ClientSession | None:
        """The session requests to peers go through, while the node runs."""
        return None if self._session is None or self._session.closed else self._session

    def _forwardable(self) -> dict[str, tuple[PeerSettings, Hello]]:
        """Live peers that may take this node's chats, with what they last said they offer."""
        return {
            peer.id: (peer, self.heard[peer.id])
            for peer in self.live()
            if peer.forward_chat and peer.id in self.heard
        }

    def live(self) -> list[PeerSettings]:
        """The peers federation talks to now: not paused, and alive."""
        if self.all_paused:
            return []
        return [
            peer
            for peer in self.peers.values()
            if not peer.paused and self.membership.state(peer.id) is PeerState.ALIVE
        ]

    def ring(self) -> None:
        """Federated records changed here: live peers are told to pull now (push a doorbell, pull
        the data), rather than at their next interval. Rings close together share one."""
        self._ringing.set()

    def rung(self, peer: str) -> None:
        """``peer`` rang: pull from it now."""
        self._rung.add(peer)
        self._woken.set()

    async def _doorbells(self, session: aiohttp.ClientSession, tasks: anyio.abc.TaskGroup) -> None:
        sending: set[str] = set()  # one doorbell in flight per peer; a later ring covers the rest

        async def ring_one(peer: PeerSettings) -> None:
            try:
                await call(session, self.key, peer, DOORBELL_PATH, {}, traffic=self.traffic)
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.info("federation peer %s: doorbell failed: %r", peer.id, exc)
            finally:
                sending.discard(peer.id)

        while True:
            await self._ringing.wait()
            await asyncio.sleep(RING_COALESCE_SECONDS)
            self._ringing.clear()
            for peer in self.live():
                if peer.id not in sending:
                    sending.add(peer.id)
                    tasks.start_soon(ring_one, peer)

    def _sources(self) -> list[PeerSettings]:
        """The live peers this node takes records from."""
        return [peer for peer in self.live() if peer.write]

    async def _pulls(self, session: aiohttp.ClientSession) -> None:
        """Pull from every live peer each heartbeat interval, and from a peer at once when it
        rings."""
        loop = asyncio.get_running_loop()
        interval = self.settings.heartbeat_seconds
        due, everyone = loop.time(), True
        while True:
            rung, self._rung = self._rung, set()
            self._woken.clear()  # a ring during these pulls starts the next round at once
            peers = [peer for peer in self._sources() if everyone or peer.id in rung]
            await asyncio.gather(*(self._pull(session, peer) for peer in peers))
            if everyone:
                due = loop.time() + interval
            try:
                async with asyncio.timeout(max(0.0, due - loop.time())):
                    await self._woken.wait()
                everyone = False
            except TimeoutError:
                everyone = True

    async def _every(
        self,
        interval: float,
        session: aiohttp.ClientSession,
        step: Callable[[aiohttp.ClientSession, PeerSettings], Awaitable[None]],
        peers: Callable[[], list[PeerSettings]] | None = None,
    ) -> None:
        """Run ``step`` with every live peer (by default those this node takes records from),
        side by side, then wait ``interval``; forever."""
        while True:
            await asyncio.gather(*(step(session, peer) for peer in (peers or self._sources)()))
            await asyncio.sleep(interval)

    async def _beat(self, session: aiohttp.ClientSession, peer: PeerSettings) -> None:
        try:
            hello = await self.hello(peer)
            answer = await call(
                session, self.key, peer, HEARTBEAT_PATH, hello.model_dump(mode="json"), traffic=self.traffic
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("federation peer %s is unreachable: %r", peer.id, exc)
            return
        if answer is None:
            return
        try:
            self.greeted(peer.id, Hello.model_validate_json(answer))
        except ValidationError:
            log.info("federation peer %s answered a heartbeat with a malformed hello", peer.id)
        before = self.membership.heard(peer.id, time.monotonic())
        if before is not None:
            log.warning("federation peer %s is alive again", peer.id)

    async def search(self, query: SearchQuery) -> list[tuple[str, list[SearchHit]]]:
        """The live peers' hits for ``query`` (``search.py``); the memory service's ``Elsewhere``."""
        if self._session is None or self._session.closed:
            return []
        peers = self.live()
        return await ask(self._sender(self._session), peers, query, self.settings.search_timeout_seconds)

    def _sender(self, session: aiohttp.ClientSession) -> Send:
        async def send(peer: PeerSettings, path: str, payload: dict[str, Any]) -> bytes | None:
            return await call(session, self.key, peer, path, payload, traffic=self.traffic)

        return send

    async def _pull(self, session: aiohttp.ClientSession, peer: PeerSettings) -> None:
        try:
            if await self.sync.pull(self._sender(session), peer):
                self.ring()  # what came in here goes on to this node's other peers
            self.synced_at[peer.id] = time.time()
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("federation peer %s: pulling changes failed: %r", peer.id, exc)

    async def _witness(self, session: aiohttp.ClientSession, peer: PeerSettings) -> None:
        public = self._keys.get(peer.id)
        if public is None:
            return
        others = {
            other.id: (other, self._keys[other.id])
            for other in self.live()
            if other.id != peer.id and other.id in self._keys
        }
        try:
            await self.witness.check(self._sender(session), peer, public)
            await self.witness.compare(self._sender(session), peer, others)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("federation peer %s: checking its audit log failed: %r", peer.id, exc)

    async def _repair(self, session: aiohttp.ClientSession, peer: PeerSettings) -> None:
        try:
            report = await self.sync.repair(self._sender(session), peer)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("federation peer %s: repair failed: %r", peer.id, exc)
            return
        self.reconciled_at[peer.id] = time.time()
        if report.applied or report.dropped:
            log.info(
                "federation peer %s: repair took %d records (%d round trips, %d bytes)",
                peer.id,
                report.applied,
                report.rounds,
                report.sent + report.received,
            )


__all__ = ["HEARTBEAT_PATH", "Federation", "Offers", "effective_peers"]
