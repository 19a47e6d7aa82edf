"""Merkle tree hashing, inclusion and consistency proofs as RFC 9162 (Certificate Transparency
2.0, section 2.1) defines them, with SHA-256: the audit log's tree.

Written here rather than taken from a library: the algorithms are short and exactly specified,
and the kept Python CT libraries verify proofs but do not build trees or produce proofs.

    leaf hash  = SHA-256(0x00 || entry)
    node hash  = SHA-256(0x01 || left || right)
    root of n  = node(root of the first k leaves, root of the rest), k the largest power of 2 < n
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaves: Sequence[bytes]) -> bytes:
    """The tree head of ``leaves`` (leaf hashes, in order)."""
    frontier = Frontier()
    for leaf in leaves:
        frontier.append(leaf)
    return frontier.root()


class Frontier:
    """The roots of the perfect subtrees a tree of ``size`` leaves decomposes into, left to right:
    appending a leaf and reading the root cost O(log n), so the log keeps its head current."""

    def __init__(self) -> None:
        self.size = 0
        self._nodes: list[tuple[int, bytes]] = []  # (height, hash)

    def append(self, leaf: bytes) -> None:
        height, value = 0, leaf
        while self._nodes and self._nodes[-1][0] == height:
            _, left = self._nodes.pop()
            height, value = height + 1, node_hash(left, value)
        self._nodes.append((height, value))
        self.size += 1

    def root(self) -> bytes:
        if not self._nodes:
            return EMPTY_ROOT
        value = self._nodes[-1][1]
        for _, left in reversed(self._nodes[:-1]):
            value = node_hash(left, value)
        return value


class Tree:
    """Proofs over a fixed list of leaf hashes. Subtree roots are remembered, so many proofs over
    one tree (a verifier checking hundreds of entries) cost O(log n) each after the first."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.leaves = leaves
        self._roots: dict[tuple[int, int], bytes] = {}

    def root(self, start: int = 0, end: int | None = None) -> bytes:
        """The root of leaves[start:end]."""
        end = len(self.leaves) if end is None else end
        if end - start == 0:
            return EMPTY_ROOT
        if end - start == 1:
            return self.leaves[start]
        known = self._roots.get((start, end))
        if known is None:
            middle = start + _split(end - start)
            known = self._roots[(start, end)] = node_hash(self.root(start, middle), self.root(middle, end))
        return known

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The audit path of leaf ``index`` in the tree of the first ``size`` leaves."""
        size = len(self.leaves) if size is None else size
        if not 0 <= index < size <= len(self.leaves):
            raise ValueError(f"leaf {index} is not in a tree of {size}")
        path: list[bytes] = []
        start, end = 0, size
        while end - start > 1:
            middle = start + _split(end - start)
            if index < middle:
                path.append(self.root(middle, end))
                end = middle
            else:
                path.append(self.root(start, middle))
                start = middle
        return path[::-1]

    def consistency_proof(self, old_size: int, size: int | None = None) -> list[bytes]:
        """Proof that the tree of the first ``old_size`` leaves is a prefix of the first ``size``."""
        size = len(self.leaves) if size is None else size
        if not 0 < old_size <= size <= len(self.leaves):
            raise ValueError(f"no consistency proof from {old_size} to {size} leaves")
        return self._subproof(old_size, 0, size, True)

    def _subproof(self, m: int, start: int, end: int, complete: bool) -> list[bytes]:
        if m == end - start:
            return [] if complete else [self.root(start, end)]
        middle = start + _split(end - start)
        k = middle - start
        if m <= k:
            return [*self._subproof(m, start, middle, complete), self.root(middle, end)]
        return [*self._subproof(m - k, middle, end, False), self.root(start, middle)]


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of ``leaves``."""
    return Tree(leaves).inclusion_proof(index)


def consistency_proof(old_size: int, leaves: Sequence[bytes]) -> list[bytes]:
    """Proof that the tree of the first ``old_size`` leaves is a prefix of the tree of ``leaves``."""
    return Tree(leaves).consistency_proof(old_size)


def verify_inclusion(leaf: bytes, index: int, size: int, path: Sequence[bytes], head: bytes) -> bool:
    """RFC 9162 section 2.1.3.2: does ``path`` prove leaf ``index`` is in the tree ``head``?"""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == head


def verify_consistency(old_size: int, old_head: bytes, size: int, head: bytes, path: Sequence[bytes]) -> bool:
    """RFC 9162 section 2.1.4.2: does ``path`` prove tree ``old_head`` is a prefix of ``head``?"""
    if old_size == size:
        return not path and old_head == head
    if old_size == 0 or old_size > size or not path:
        return False
    proof = list(path)
    if old_size & (old_size - 1) == 0:  # an exact power of two: the old head is a node of the path
        proof.insert(0, old_head)
    fn, sn = old_size - 1, size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == old_head and sr == head and sn == 0


__all__ = [
    "EMPTY_ROOT",
    "Frontier",
    "Tree",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root",
    "verify_consistency",
    "verify_inclusion",
]
