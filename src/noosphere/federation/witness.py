"""Peers witness each other's audit logs, as certificate-transparency monitors do: a node that
rewrites its own history is caught by its peers, even though it can re-sign whatever it likes.

Every ``federation.witness_seconds`` each node fetches each live peer's newest signed tree head
(``POST /federation/v1/audit/head``) and checks it against the last head it verified of that
peer: the signature must be the peer's; a log never shrinks; a head of the same size has the
same root; and a larger one comes with a consistency proof
(``POST /federation/v1/audit/consistency``) that the old tree is a prefix of the new one. A head
that passes becomes the one to check the next against. One that fails is recorded with the two
signed heads that cannot both be honest (the evidence), audited (``federation.witness_failed``),
and shown by ``noosphere audit verify --peers``; the last good head is kept.

**Gossip.** A node could show each peer a different history, each consistent in itself (a split
view). So after checking a peer, the node also asks it for the heads it verified of the node's
other peers (``POST /federation/v1/audit/witnessed``; a node answers only about the nodes it is
asked about). Each head is signed by the node it describes, so the peer relaying it cannot
forge it. Against the head this node verified of the same node: the same size must have the
same root, and of two sizes the node itself must prove the smaller a prefix of the larger. A
node that fails is caught as above, the two heads it signed kept as evidence.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from noosphere.config import PeerSettings
from noosphere.governance import merkle
from noosphere.governance.audit import AuditLog, head_message
from noosphere.identity import verify
from noosphere.store.contract import FederatedRecords, MemoryStore, TreeHead, Witnessed

log = logging.getLogger(__name__)

HEAD_PATH = "/federation/v1/audit/head"
CONSISTENCY_PATH = "/federation/v1/audit/consistency"
WITNESSED_PATH = "/federation/v1/audit/witnessed"
GOSSIP_MAX = 256  # nodes one gossip request asks about
INT64_MAX = (1 << 63) - 1


class SignedHead(BaseModel):
    model_config = ConfigDict(extra="forbid")

    size: int = Field(ge=0, le=INT64_MAX)
    root: str = Field(pattern=r"^[0-9a-f]{64}$")
    at: datetime
    signature: str = Field(max_length=100)

    @classmethod
    def of(cls, head: TreeHead) -> SignedHead:
        return cls(
            size=head.size,
            root=head.root.hex(),
            at=head.at,
            signature=base64.b64encode(head.signature).decode(),
        )

    def head(self) -> TreeHead:
        return TreeHead(self.size, bytes.fromhex(self.root), self.at, base64.b64decode(self.signature))


class HeadAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    head: SignedHead | None = None


class ConsistencyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    old_size: int = Field(ge=1, le=INT64_MAX)
    size: int = Field(ge=1, le=INT64_MAX)


class ConsistencyAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: list[str] = Field(max_length=128)


NodeId = Annotated[str, Field(min_length=1, max_length=64)]


class WitnessedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    nodes: list[NodeId] = Field(max_length=GOSSIP_MAX)


class WitnessedHead(BaseModel):
    model_config = ConfigDict(extra="forbid")

    node: NodeId
    head: SignedHead


class WitnessedAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    heads: list[WitnessedHead] = Field(max_length=GOSSIP_MAX)


# -- serving --------------------------------------------------------------------------------------
async def witnessed_heads(records: FederatedRecords, asked: WitnessedRequest) -> dict[str, Any]:
    """The last head this node verified of each node asked about that it witnesses."""
    wanted = set(asked.nodes)
    heads = [
        WitnessedHead(node=w.peer, head=SignedHead.of(w.head))
        for w in await records.witnessed()
        if w.peer in wanted
    ]
    return WitnessedAnswer(heads=heads).model_dump(mode="json")


async def newest_head(store: MemoryStore) -> dict[str, Any]:
    heads = await store.tree_heads()
    return HeadAnswer(head=SignedHead.of(heads[-1]) if heads else None).model_dump(mode="json")


async def consistency(store: MemoryStore, asked: ConsistencyRequest) -> dict[str, Any]:
    """The proof that this node's log at ``old_size`` is a prefix of it at ``size``, for sizes
    up to its newest signed head (``ValueError`` otherwise)."""
    heads = await store.tree_heads()
    newest = heads[-1].size if heads else 0
    if not asked.old_size <= asked.size <= newest:
        raise ValueError(f"sizes must satisfy 1 <= old_size <= size <= {newest} (the newest signed head)")
    leaves = [entry.leaf for entry in await store.audit_entries(0, asked.size)]
    path = merkle.Tree(leaves).consistency_proof(asked.old_size)
    return {"path": [node.hex() for node in path]}


# -- witnessing -----------------------------------------------------------------------------------
def _signed(head: TreeHead, public: Ed25519PublicKey) -> bool:
    return verify(public, head.signature, head_message(head.size, head.root, head.at))


def _evidence(before: TreeHead, after: TreeHead) -> str:
    return orjson.dumps(
        {
            "heads": [
                SignedHead.of(before).model_dump(mode="json"),
                SignedHead.of(after).model_dump(mode="json"),
            ]
        }
    ).decode()


class Witness:
    def __init__(self, records: FederatedRecords, audit: AuditLog) -> None:
        self.records, self.audit = records, audit

    async def check(self, send: Any, peer: PeerSettings, public: Ed25519PublicKey) -> Witnessed | None:
        """Fetch and check ``peer``'s newest head; what is now known of its log (None if it
        could not be asked, or has signed no head yet)."""
        data = await send(peer, HEAD_PATH, {})
        if data is None:
            return None
        try:
            answer = HeadAnswer.model_validate_json(data)
        except ValidationError:
            log.warning("federation peer %s sent a malformed tree head", peer.id)
            return None
        if answer.head is None:
            return None
        head = answer.head.head()
        now = datetime.now(UTC)
        known = {w.peer: w for w in await self.records.witnessed()}.get(peer.id)
        if not _signed(head, public):
            log.warning("federation peer %s sent a tree head it did not sign; ignored", peer.id)
            return known
        if known is None:
            return await self._keep(Witnessed(peer.id, head, now))
        if known.problem is not None:  # caught once: stays caught, the evidence kept
            return known
        last = known.head
        problem: str | None = None
        if head.size < last.size:
            problem = f"its log shrank from {last.size} to {head.size} entries"
        elif head.size == last.size:
            if head.root != last.root:
                problem = f"it signed two different logs of {head.size} entries"
        else:
            proof = await send(peer, CONSISTENCY_PATH, {"old_size": last.size, "size": head.size})
            if proof is None:
                return known  # asked again next time
            try:
                path = [bytes.fromhex(node) for node in ConsistencyAnswer.model_validate_json(proof).path]
            except (ValidationError, ValueError):
                path = []
            if not merkle.verify_consistency(last.size, last.root, head.size, head.root, path):
                problem = (
                    f"its log of {head.size} entries does not extend the one of {last.size} it signed before"
                )
        if problem is None:
            return await self._keep(Witnessed(peer.id, head, now))
        return await self._catch(peer.id, last, head, problem)

    async def compare(
        self,
        send: Any,
        peer: PeerSettings,
        others: Mapping[str, tuple[PeerSettings, Ed25519PublicKey]],
    ) -> list[Witnessed]:
        """Gossip: check the heads ``peer`` verified of ``others`` (this node's other live
        peers, with their keys) against those this node verified; the nodes caught showing
        two histories."""
        if not others:
            return []
        data = await send(peer, WITNESSED_PATH, {"nodes": sorted(others)[:GOSSIP_MAX]})
        if data is None:
            return []
        try:
            answer = WitnessedAnswer.model_validate_json(data)
        except ValidationError:
            log.warning("federation peer %s sent malformed witnessed heads", peer.id)
            return []
        known = {w.peer: w for w in await self.records.witnessed()}
        caught = []
        for item in answer.heads:
            mine = known.get(item.node)
            if item.node not in others or mine is None or mine.problem is not None:
                continue
            node, public = others[item.node]
            theirs = item.head.head()
            if not _signed(theirs, public):
                log.warning("federation peer %s relayed a head %s did not sign; ignored", peer.id, node.id)
                continue
            problem = await self._same_history(send, node, mine.head, theirs)
            if problem is not None:
                caught.append(await self._catch(node.id, mine.head, theirs, f"{problem} (seen by {peer.id})"))
        return caught

    async def _same_history(
        self, send: Any, node: PeerSettings, mine: TreeHead, theirs: TreeHead
    ) -> str | None:
        """Why two heads ``node`` signed cannot be one history; None if they are (or if it
        could not be asked to prove it, this time)."""
        if mine.size == theirs.size:
            if mine.root == theirs.root:
                return None
            return f"it signed two different logs of {mine.size} entries"
        old, new = sorted((mine, theirs), key=lambda head: head.size)
        if old.size == 0:
            return None
        proof = await send(node, CONSISTENCY_PATH, {"old_size": old.size, "size": new.size})
        if proof is None:
            return None
        try:
            path = [bytes.fromhex(n) for n in ConsistencyAnswer.model_validate_json(proof).path]
        except (ValidationError, ValueError):
            path = []
        if merkle.verify_consistency(old.size, old.root, new.size, new.root, path):
            return None
        return f"its logs of {old.size} and {new.size} entries shown to two nodes are not one history"

    async def _catch(self, node: str, last: TreeHead, other: TreeHead, problem: str) -> Witnessed:
        caught = Witnessed(node, last, datetime.now(UTC), problem, _evidence(last, other))
        await self._keep(caught)
        log.error("federation peer %s rewrote its audit log: %s", node, problem)
        await self.audit.append("federation", "federation.witness_failed", {"peer": node, "problem": problem})
        return caught

    async def _keep(self, record: Witnessed) -> Witnessed:
        await self.records.put_witnessed(record)
        return record


__all__ = [
    "CONSISTENCY_PATH",
    "HEAD_PATH",
    "WITNESSED_PATH",
    "ConsistencyRequest",
    "Witness",
    "WitnessedRequest",
    "consistency",
    "newest_head",
    "witnessed_heads",
]
