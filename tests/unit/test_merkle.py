from __future__ import annotations

import pytest

from noosphere.governance.merkle import (
    EMPTY_ROOT,
    Frontier,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

# The Certificate Transparency reference inputs and tree heads (RFC 6962 test vectors).
DATA = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    bytes(range(0x50, 0x58)),
    bytes(range(0x60, 0x70)),
]
HEADS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
LEAVES = [leaf_hash(d) for d in DATA]
MANY = [leaf_hash(str(i).encode()) for i in range(40)]


def test_tree_heads_match_the_reference_vectors() -> None:
    assert root([]) == EMPTY_ROOT
    for n, head in enumerate(HEADS, start=1):
        assert root(LEAVES[:n]).hex() == head


def test_the_frontier_keeps_the_head_current() -> None:
    frontier = Frontier()
    for n, leaf in enumerate(MANY, start=1):
        frontier.append(leaf)
        assert frontier.size == n
        assert frontier.root() == root(MANY[:n])


@pytest.mark.parametrize("size", range(1, 41))
def test_every_leaf_has_an_inclusion_proof_and_only_it_verifies(size: int) -> None:
    leaves, head = MANY[:size], root(MANY[:size])
    for index, leaf in enumerate(leaves):
        path = inclusion_proof(index, leaves)
        assert verify_inclusion(leaf, index, size, path, head)
        assert not verify_inclusion(leaf_hash(b"forged"), index, size, path, head)
        if size > 1:
            assert not verify_inclusion(leaf, (index + 1) % size, size, path, head)
    assert not verify_inclusion(leaves[0], size, size, [], head)


@pytest.mark.parametrize("size", range(1, 41))
def test_every_prefix_has_a_consistency_proof(size: int) -> None:
    leaves, head = MANY[:size], root(MANY[:size])
    for old in range(1, size + 1):
        old_head = root(leaves[:old])
        path = consistency_proof(old, leaves)
        assert verify_consistency(old, old_head, size, head, path)
        if old < size:
            assert not verify_consistency(old, leaf_hash(b"x"), size, head, path)
            assert not verify_consistency(old, old_head, size, leaf_hash(b"x"), path)
            assert not verify_consistency(old, old_head, size, head, path[:-1])


def test_a_rewritten_history_is_not_consistent() -> None:
    rewritten = [*MANY[:10], leaf_hash(b"edited"), *MANY[11:20]]
    path = consistency_proof(15, rewritten)
    assert not verify_consistency(15, root(MANY[:15]), 20, root(rewritten), path)


def test_out_of_range_proofs_are_refused() -> None:
    with pytest.raises(ValueError, match="not in a tree"):
        inclusion_proof(3, MANY[:3])
    with pytest.raises(ValueError, match="no consistency proof"):
        consistency_proof(0, MANY[:3])
    with pytest.raises(ValueError, match="no consistency proof"):
        consistency_proof(4, MANY[:3])
