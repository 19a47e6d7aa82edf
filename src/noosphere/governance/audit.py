"""The audit log: tool calls, messages, policy decisions and approvals, appended as canonical JSON
entries to an RFC 9162 Merkle tree whose heads the node signs with its Ed25519 key.

Concurrent appends share one insert transaction (the store serializes appenders, across processes
too). The node signs a tree head every few seconds when the log has grown, and when it stops.
``verify_log`` checks, from the stored data and the public key alone: every entry against its
leaf, every signed head's root and signature, a consistency proof between consecutive heads (the
log only grew), and inclusion proofs of entries in the newest head.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio.to_thread
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from noosphere.governance import head_file, merkle
from noosphere.groupcommit import GroupCommit
from noosphere.identity import NodeKey, verify
from noosphere.store.contract import AuditEntry, MemoryStore, TreeHead


def canonical(at: datetime, actor: str, kind: str, body: Mapping[str, Any]) -> str:
    """The entry's text, byte-for-byte reproducible: sorted keys, no spaces, UTF-8."""
    record = {"at": at.astimezone(UTC).isoformat(), "actor": actor, "kind": kind, "body": body}
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def head_message(size: int, root: bytes, at: datetime) -> bytes:
    """What a tree head's signature covers."""
    millis = round(at.timestamp() * 1000)
    return f"noosphere tree head v1\n{size}\n{root.hex()}\n{millis}".encode()


def _millis(at: datetime) -> datetime:
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


class AuditLog:
    def __init__(self, store: MemoryStore, key: NodeKey, head_file: Path | None = None) -> None:
        self.store = store
        self.key = key
        self.head_file = head_file  # every signed head is appended here too (``head_file.py``)
        self._frontier = merkle.Frontier()  # over the entries read so far
        self._signed: int | None = None  # size of the newest head, once read
        self._appended = 0  # one past the highest seq this process appended
        self._writes: GroupCommit[tuple[str, bytes], int] = GroupCommit(self._write)

    async def _write(self, entries: list[tuple[str, bytes]]) -> list[int]:
        first = await self.store.append_audit(entries)
        return list(range(first, first + len(entries)))

    async def append(self, actor: str, kind: str, body: Mapping[str, Any]) -> int:
        """Append one entry; returns its seq. Concurrent appends share one transaction."""
        text = canonical(datetime.now(UTC), actor, kind, body)
        (seq,) = await self._writes.submit([(text, merkle.leaf_hash(text.encode()))])
        self._appended = max(self._appended, seq + 1)
        return seq

    @property
    def size(self) -> int:
        """Entries in the log as far as this process knows (what it appended or has read)."""
        return max(self._appended, self._frontier.size)

    async def close(self) -> None:
        """Wait for pending appends."""
        await self._writes.close()

    async def sign_head(self) -> TreeHead | None:
        """Sign the current tree head if the log grew since the last one; None if it did not."""
        while True:
            batch = await self.store.audit_entries(self._frontier.size, 10_000)
            if not batch:
                break
            for entry in batch:
                self._frontier.append(entry.leaf)
        if self._signed is None:
            heads = await self.store.tree_heads()
            self._signed = heads[-1].size if heads else 0
        if self._frontier.size <= self._signed:
            return None
        at = _millis(datetime.now(UTC))
        root = self._frontier.root()
        head = TreeHead(
            size=self._frontier.size,
            root=root,
            at=at,
            signature=self.key.sign(head_message(self._frontier.size, root, at)),
        )
        await self.store.put_tree_head(head)
        if self.head_file is not None:
            await anyio.to_thread.run_sync(head_file.append, self.head_file, head)
        self._signed = head.size
        return head


@dataclass
class Verification:
    entries: int = 0
    heads: int = 0
    signed_size: int = 0  # entries covered by the newest signed head
    inclusion_checked: int = 0
    consistency_checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_log(
    entries: Sequence[AuditEntry],
    heads: Sequence[TreeHead],
    public: Ed25519PublicKey,
    sample: int = 256,
    anchors: Sequence[TreeHead] = (),
    trusted: Sequence[TreeHead] = (),
) -> Verification:
    """Check the log from its stored data and the node's public key (see the module docstring).
    ``sample`` bounds the inclusion proofs checked (spread evenly; every entry when fewer).

    ``anchors`` are signed heads kept outside the database (the head file) and ``trusted`` heads
    a reader kept (size and root, no signature): the entries must still produce each of them, so a
    log cut short, or edited with its heads deleted, fails. A log with entries and no signed head
    at all fails too: nothing could tell a truncated one from a whole one."""
    report = Verification(entries=len(entries), heads=len(heads))
    leaves: list[bytes] = []
    for position, entry in enumerate(entries):
        if entry.seq != position:
            report.problems.append(f"entry {position} is missing (found seq {entry.seq} in its place)")
            return report
        computed = merkle.leaf_hash(entry.entry.encode())
        if computed != entry.leaf:
            report.problems.append(f"entry {entry.seq} was altered: its text no longer hashes to its leaf")
        leaves.append(computed)
    tree = merkle.Tree(leaves)
    for head in anchors:
        if not verify(public, head.signature, head_message(head.size, head.root, head.at)):
            report.problems.append(f"the head of size {head.size} in the head file is not signed by this key")
    for source, kept in (("the head file", anchors), ("the trusted head", trusted)):
        for head in kept:
            if head.size > len(leaves):
                report.problems.append(
                    f"TRUNCATED: {source} covers {head.size} entries; the database holds {len(leaves)}"
                )
            elif tree.root(0, head.size) != head.root:
                report.problems.append(
                    f"REWRITTEN: the entries no longer produce the root of size {head.size} in {source}"
                )
    if leaves and not heads and not anchors:
        report.problems.append(
            "UNSIGNED: no signed tree head covers this log, so a truncated or edited log cannot be told "
            "from a whole one"
        )
    previous: TreeHead | None = None
    for head in heads:
        if head.size > len(leaves):
            report.problems.append(f"the head of size {head.size} covers entries that are gone")
            continue
        if not verify(public, head.signature, head_message(head.size, head.root, head.at)):
            report.problems.append(f"the signature of the head of size {head.size} does not verify")
        if tree.root(0, head.size) != head.root:
            report.problems.append(f"the entries no longer produce the signed root of size {head.size}")
        if previous is not None:
            proof = tree.consistency_proof(previous.size, head.size)
            if not merkle.verify_consistency(previous.size, previous.root, head.size, head.root, proof):
                report.problems.append(f"the head of size {head.size} does not extend size {previous.size}")
            report.consistency_checked += 1
        previous = head
    if previous is not None:  # heads beyond the entries were skipped above
        report.signed_size = size = previous.size
        step = max(1, size // max(1, sample))
        for index in range(0, size, step):
            proof = tree.inclusion_proof(index, size)
            if not merkle.verify_inclusion(leaves[index], index, size, proof, previous.root):
                report.problems.append(f"entry {index} is not included in the newest signed head")
            report.inclusion_checked += 1
    return report


__all__ = ["AuditLog", "Verification", "canonical", "head_message", "verify_log"]
