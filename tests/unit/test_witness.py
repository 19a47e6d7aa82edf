"""Witnessing a peer's audit log, decision by decision: a log that only grows passes; one that
shrank, forked at the same size, or does not extend what the peer signed before is caught, with
both signed heads kept as evidence; a head the peer did not sign is ignored."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from noosphere.config import PeerSettings
from noosphere.federation.witness import CONSISTENCY_PATH, HEAD_PATH, WITNESSED_PATH, SignedHead, Witness
from noosphere.governance import merkle
from noosphere.governance.audit import head_message
from noosphere.identity import NodeKey, load_or_create
from noosphere.store.contract import TreeHead, Witnessed


class Records:
    def __init__(self) -> None:
        self.kept: dict[str, Witnessed] = {}

    async def witnessed(self) -> list[Witnessed]:
        return list(self.kept.values())

    async def put_witnessed(self, record: Witnessed) -> None:
        self.kept[record.peer] = record


class Audit:
    def __init__(self) -> None:
        self.entries: list[tuple[str, dict[str, Any]]] = []

    async def append(self, actor: str, kind: str, body: dict[str, Any]) -> int:
        self.entries.append((kind, body))
        return len(self.entries)


class Peer:
    """A peer's log as it serves it: leaves, and heads signed by ``key``."""

    def __init__(self, key: NodeKey, leaves: list[bytes]) -> None:
        self.key, self.leaves = key, leaves

    def head(self, signer: NodeKey | None = None) -> TreeHead:
        at = datetime(2026, 5, 1, tzinfo=UTC)
        root = merkle.root(self.leaves)
        signature = (signer or self.key).sign(head_message(len(self.leaves), root, at))
        return TreeHead(len(self.leaves), root, at, signature)

    def sender(self, head: TreeHead) -> Any:
        async def send(peer: PeerSettings, path: str, payload: dict[str, Any]) -> bytes:
            if path == HEAD_PATH:
                return orjson.dumps({"head": SignedHead.of(head).model_dump(mode="json")})
            assert path == CONSISTENCY_PATH
            proof = merkle.Tree(self.leaves).consistency_proof(payload["old_size"], payload["size"])
            return orjson.dumps({"path": [node.hex() for node in proof]})

        return send


def _leaves(n: int, tag: str = "") -> list[bytes]:
    return [merkle.leaf_hash(f"entry {i}{tag}".encode()) for i in range(n)]


async def _check(witness: Witness, peer: Peer, settings: PeerSettings, head: TreeHead) -> Witnessed | None:
    return await witness.check(peer.sender(head), settings, peer.key.public)


async def test_a_growing_log_passes_and_each_way_of_rewriting_it_is_caught(tmp_path: Path) -> None:
    key = load_or_create(tmp_path / "home")
    settings = PeerSettings(id=key.id, public_key=key.public_text, url="http://home.invalid")
    for rewrite in ("shrink", "fork", "rewrite"):
        records, audit = Records(), Audit()
        witness = Witness(records, audit)  # type: ignore[arg-type]
        peer = Peer(key, _leaves(5))
        first = await _check(witness, peer, settings, peer.head())
        assert first is not None and first.problem is None and first.head.size == 5
        peer.leaves = _leaves(9)  # it grew: consistent
        grown = await _check(witness, peer, settings, peer.head())
        assert grown is not None and grown.problem is None and grown.head.size == 9
        if rewrite == "shrink":
            peer.leaves = _leaves(7)
        elif rewrite == "fork":
            peer.leaves = _leaves(9, tag=" (changed)")
        else:
            peer.leaves = _leaves(3, tag=" (changed)") + _leaves(12)[3:]
        caught = await _check(witness, peer, settings, peer.head())
        assert caught is not None and caught.problem is not None, rewrite
        assert caught.head.size == 9  # the last good head is kept
        assert caught.evidence is not None and len(orjson.loads(caught.evidence)["heads"]) == 2
        assert [kind for kind, _ in audit.entries] == ["federation.witness_failed"]
        peer.leaves = _leaves(20)  # once caught, stays caught
        again = await _check(witness, peer, settings, peer.head())
        assert again == caught


async def test_a_head_the_peer_did_not_sign_is_ignored(tmp_path: Path) -> None:
    key, other = load_or_create(tmp_path / "home"), load_or_create(tmp_path / "other")
    settings = PeerSettings(id=key.id, public_key=key.public_text, url="http://home.invalid")
    records, audit = Records(), Audit()
    witness = Witness(records, audit)  # type: ignore[arg-type]
    peer = Peer(key, _leaves(4))
    assert await _check(witness, peer, settings, peer.head(signer=other)) is None
    assert records.kept == {} and audit.entries == []


async def test_gossip_catches_a_node_that_shows_two_peers_two_histories(tmp_path: Path) -> None:
    """This node verified X's log; peer P relays the head it verified of X. X's own real log
    answers the consistency proofs."""
    x_key, p_key, stranger = (load_or_create(tmp_path / name) for name in ("x", "p", "stranger"))
    x = PeerSettings(id=x_key.id, public_key=x_key.public_text, url="http://x.invalid")
    p = PeerSettings(id=p_key.id, public_key=p_key.public_text, url="http://p.invalid")
    real = Peer(x_key, _leaves(5))
    cases = {
        "the same log": (Peer(x_key, _leaves(5)).head(), False),
        "its log, grown since": (Peer(x_key, _leaves(7)).head(), False),
        "a fork of the same size": (Peer(x_key, _leaves(5, tag=" (for p)")).head(), True),
        "a larger fork": (Peer(x_key, _leaves(3) + _leaves(7, tag=" (for p)")[3:]).head(), True),
        "a head x never signed": (Peer(x_key, _leaves(5, tag=" (for p)")).head(signer=stranger), False),
    }
    for case, (relayed, split) in cases.items():
        records, audit = Records(), Audit()
        witness = Witness(records, audit)  # type: ignore[arg-type]
        await _check(witness, real, x, real.head())
        real.leaves = _leaves(7)  # x grew meanwhile; its proofs come from its one real log

        async def send(
            peer: PeerSettings, path: str, payload: dict[str, Any], relayed: TreeHead = relayed
        ) -> bytes:
            if path == WITNESSED_PATH:
                assert peer == p and payload == {"nodes": [x.id]}
                return orjson.dumps(
                    {"heads": [{"node": x.id, "head": SignedHead.of(relayed).model_dump(mode="json")}]}
                )
            assert peer == x and path == CONSISTENCY_PATH
            return await real.sender(real.head())(peer, path, payload)

        caught = await witness.compare(send, p, {x.id: (x, x_key.public)})
        assert bool(caught) is split, case
        assert (records.kept[x.id].problem is not None) is split, case
        if split:
            assert p.id in (records.kept[x.id].problem or "")
            assert [kind for kind, _ in audit.entries] == ["federation.witness_failed"], case
        real.leaves = _leaves(5)
