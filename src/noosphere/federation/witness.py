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
"""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime
from typing import Any

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


# -- serving --------------------------------------------------------------------------------------
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
        caught = Witnessed(peer.id, last, now, problem, _evidence(last, head))
        await self._keep(caught)
        log.error("federation peer %s rewrote its audit log: %s", peer.id, problem)
        await self.audit.append(
            "federation", "federation.witness_failed", {"peer": peer.id, "problem": problem}
        )
        return caught

    async def _keep(self, record: Witnessed) -> Witnessed:
        await self.records.put_witnessed(record)
        return record


__all__ = ["CONSISTENCY_PATH", "HEAD_PATH", "ConsistencyRequest", "Witness", "consistency", "newest_head"]
