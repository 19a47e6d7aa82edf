"""Deterministic simulation of federated memory sync: 2 to 20 nodes in one process, each with its
own real SQLite store, memory service and sync, talking over a simulated network that drops,
duplicates and delays messages (a delayed answer arrives after newer ones: reordering), with
partitions, clock skew, and nodes that crash and restart from their stores.

Every step is awaited in an order drawn from the seed, so a seed replays exactly. After the
faults, the network heals and the nodes sync until nothing changes; then:

- every acknowledged federated write is on every node (live, or erased if its origin erased it);
- every node holds the same federated records in the same state, and agrees on which are current;
- no private or shared memory ever left the node it was written on.

``NOOSPHERE_SIM_SEEDS`` runs more seeds per size (the suite runs a few)."""

from __future__ import annotations

import os
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from noosphere.auth.principal import Principal, PrincipalKind
from noosphere.clock import HybridLogicalClock
from noosphere.config import MemorySettings, PeerSettings
from noosphere.errors import NoosphereError
from noosphere.federation.records import ChangesRequest, ReconcileRequest, RecordsRequest
from noosphere.federation.sync import CHANGES_PATH, RECONCILE_PATH, RECORDS_PATH, Sync
from noosphere.identity import NodeKey, load_or_create
from noosphere.memory.model import Filters, MemoryDraft, Zone
from noosphere.memory.service import MemoryService
from noosphere.store.contract import Viewer
from noosphere.store.sqlite import SQLiteStore
from noosphere.testing import FakeEmbedder

ADMIN = Principal("admin", PrincipalKind.ADMIN, "admin")
SEEDS = int(os.environ.get("NOOSPHERE_SIM_SEEDS", "0"))
STEPS = 160


class SimClock:
    """The simulation's wall clock: it moves only as steps are taken, so a seed replays the same
    stamps (relative to where it started, near the real time, as repair's window needs)."""

    def __init__(self) -> None:
        self.start_ms = int(datetime.now(UTC).timestamp() * 1000)
        self.step = 0

    def now_ms(self) -> int:
        return self.start_ms + 50 * self.step


@dataclass
class SimNode:
    index: int
    key: NodeKey
    root: Path
    skew_ms: int
    wall: SimClock
    store: SQLiteStore | None = None
    memory: MemoryService | None = None
    sync: Sync | None = None
    peers: list[int] = field(default_factory=list)

    @property
    def up(self) -> bool:
        return self.sync is not None

    @property
    def settings(self) -> PeerSettings:
        return PeerSettings(id=self.key.id, public_key=self.key.public_text, url="http://sim.invalid")

    async def start(self, embedder: FakeEmbedder) -> None:
        self.store = SQLiteStore(self.root / "noosphere.db")
        await self.store.open()
        skew, wall = self.skew_ms, self.wall
        clock = HybridLogicalClock(lambda: wall.now_ms() + skew)
        self.memory = MemoryService(self.store, embedder, MemorySettings(), self.key.id, clock)
        await self.memory.check_embedder()
        await self.memory.resume_clock()
        self.sync = Sync(self.key, self.store, self.memory)

    async def crash(self) -> None:
        """Stop at once: whatever is not in the store is gone (the sync's caches with it)."""
        assert self.store is not None
        await self.store.close()
        self.store = self.memory = self.sync = None


class Network:
    def __init__(self, rng: random.Random, nodes: list[SimNode]) -> None:
        self.rng, self.nodes = rng, nodes
        self.cut: set[frozenset[int]] = set()
        self.faults = True
        self.drop, self.duplicate, self.late = 0.1, 0.05, 0.05
        self._answers: dict[tuple[int, int, str], bytes] = {}

    def sender(
        self, caller: SimNode
    ) -> Callable[[PeerSettings, str, dict[str, Any]], Awaitable[bytes | None]]:
        by_id = {node.key.id: node for node in self.nodes}

        async def send(peer: PeerSettings, path: str, payload: dict[str, Any]) -> bytes | None:
            return await self._deliver(caller, by_id[peer.id], path, payload)

        return send

    async def _deliver(self, caller: SimNode, target: SimNode, path: str, payload: dict[str, Any]) -> bytes:
        rng = self.rng
        if not target.up or frozenset((caller.index, target.index)) in self.cut:
            raise aiohttp.ClientConnectionError("unreachable")
        if self.faults and rng.random() < self.drop:
            raise aiohttp.ClientConnectionError("request lost")
        key = (caller.index, target.index, path)
        if self.faults and path == CHANGES_PATH and key in self._answers and rng.random() < self.late:
            return self._answers[key]  # an earlier page, delayed past the newer ones
        answer = await _serve(target, caller.settings, path, payload)
        if self.faults and rng.random() < self.duplicate:
            answer = await _serve(target, caller.settings, path, payload)  # delivered twice
        self._answers[key] = answer
        if self.faults and rng.random() < self.drop:
            raise aiohttp.ClientConnectionError("answer lost")
        return answer


async def _serve(target: SimNode, caller: PeerSettings, path: str, payload: dict[str, Any]) -> bytes:
    """What the target's ``/federation/`` routes answer (``server/federation_api.py``)."""
    sync = target.sync
    assert sync is not None
    if path == CHANGES_PATH:
        asked = ChangesRequest.model_validate(payload)
        return orjson.dumps(await sync.changes(caller, asked.after, asked.limit))
    if path == RECONCILE_PATH:
        return orjson.dumps(await sync.reconcile(caller, ReconcileRequest.model_validate(payload)))
    assert path == RECORDS_PATH
    items = RecordsRequest.model_validate(payload).items
    return orjson.dumps(await sync.records_for(caller, [bytes.fromhex(i) for i in items]))


@dataclass
class Ledger:
    """What the simulation's callers were told succeeded."""

    federated: dict[str, int] = field(default_factory=dict)  # id -> node that wrote it
    erased: set[str] = field(default_factory=set)
    local: dict[str, int] = field(default_factory=dict)  # private and shared: id -> its node


async def _write(node: SimNode, rng: random.Random, ledger: Ledger, step: int) -> None:
    memory, store = node.memory, node.store
    assert memory is not None and store is not None
    roll = rng.random()
    try:
        if roll < 0.15:
            zone = rng.choice([Zone.PRIVATE, Zone.SHARED])
            made = await memory.store_one(
                ADMIN, MemoryDraft(content=f"local {step} on {node.index}", zone=zone)
            )
            ledger.local[made.id] = node.index
            return
        current = await store.list_memories(
            Viewer(None), Filters(zones=[Zone.FEDERATED]), datetime.now(UTC), 500, None
        )
        if roll < 0.35 and current:  # edit a federated memory, wherever it was written
            old = rng.choice(current)
            draft = MemoryDraft(
                content=f"edit {step} of {old.id[:6]}", zone=Zone.FEDERATED, supersedes=old.id
            )
            made = await memory.store_one(ADMIN, draft)
        elif roll < 0.45 and current:  # forget one of this node's own
            own = [m for m in current if m.origin == node.key.id]
            if own:
                victim = rng.choice(own)
                await memory.forget(ADMIN, victim.id)
                ledger.erased.add(victim.id)
            return
        else:
            made = await memory.store_one(
                ADMIN, MemoryDraft(content=f"fact {step} from node {node.index}", zone=Zone.FEDERATED)
            )
        ledger.federated[made.id] = node.index
    except NoosphereError:
        pass  # refused (say, an edit of what another edit already replaced): not acknowledged


async def _sync_step(network: Network, node: SimNode, peer: SimNode, repair: bool) -> int:
    sync = node.sync
    assert sync is not None
    send = network.sender(node)
    try:
        if repair:
            report = await sync.repair(send, peer.settings)
            return report.applied + report.dropped
        return await sync.pull(send, peer.settings)
    except (aiohttp.ClientError, TimeoutError):
        return 0


async def _state(node: SimNode) -> dict[str, tuple[bool, bool]]:
    """Every federated record: (erased, current)."""
    store = node.store
    assert store is not None
    out = {}
    for item in await store.federated_items(0):
        memory = await store.get(item.id, Viewer(None))
        out[item.id] = (item.tombstone, memory is not None and memory.invalid_at is None)
    return out


async def simulate(root: Path, seed: int, size: int) -> None:
    rng = random.Random(seed)
    embedder = FakeEmbedder()
    wall = SimClock()
    nodes = [
        SimNode(i, load_or_create(root / f"n{i}"), root / f"n{i}", rng.randint(-20_000, 20_000), wall)
        for i in range(size)
    ]
    # A connected topology: a ring, and chords; records reach far nodes through others.
    for i in range(size):
        for j in {(i + 1) % size, rng.randrange(size)} - {i}:
            if j not in nodes[i].peers:
                nodes[i].peers.append(j)
                nodes[j].peers.append(i)
    for node in nodes:
        await node.start(embedder)
    network, ledger = Network(rng, nodes), Ledger()
    try:
        for step in range(STEPS):
            wall.step = step
            roll = rng.random()
            node = rng.choice(nodes)
            if not node.up:
                if roll < 0.3:
                    await node.start(embedder)
                continue
            if roll < 0.35:
                await _write(node, rng, ledger, step)
            elif roll < 0.75:
                peer = nodes[rng.choice(node.peers)]
                await _sync_step(network, node, peer, repair=roll > 0.65)
            elif roll < 0.82:
                a, b = rng.sample(range(size), 2) if size > 2 else (0, 1)
                network.cut ^= {frozenset((a, b))}  # cut, or heal, one link
            elif roll < 0.86 and sum(n.up for n in nodes) > 1:
                await node.crash()
        # Heal: everyone up, no faults, sync until a whole round changes nothing.
        network.cut.clear()
        network.faults = False
        for node in nodes:
            if not node.up:
                await node.start(embedder)
        for _ in range(3 * size + 6):
            changed = 0
            for node in nodes:
                for j in node.peers:
                    changed += await _sync_step(network, node, nodes[j], repair=False)
                    changed += await _sync_step(network, node, nodes[j], repair=True)
            if not changed:
                break
        else:
            pytest.fail(f"seed {seed}: the nodes never stopped changing")
        states = [await _state(node) for node in nodes]
        for i, state in enumerate(states):
            assert state == states[0], f"seed {seed}: node {i} disagrees with node 0"
        for memory_id in ledger.federated:
            assert memory_id in states[0], f"seed {seed}: an acknowledged write was lost"
        for memory_id in ledger.erased:
            assert states[0][memory_id][0], f"seed {seed}: an acknowledged deletion was undone"
        for memory_id, home in ledger.local.items():
            for node in nodes:
                assert node.store is not None
                held = await node.store.get(memory_id, Viewer(None))
                assert (held is not None) == (node.index == home), f"seed {seed}: a local memory crossed"
    finally:
        for node in nodes:
            if node.up:
                await node.crash()


@pytest.mark.parametrize(
    ("size", "seed"),
    [(2, s) for s in range(10 + SEEDS)]
    + [(5, 100 + s) for s in range(6 + SEEDS)]
    + [(20, 200 + s) for s in range(2 + SEEDS)],
)
async def test_every_acknowledged_write_reaches_every_node_and_all_agree(
    tmp_path: Path, size: int, seed: int
) -> None:
    await simulate(tmp_path, seed, size)
