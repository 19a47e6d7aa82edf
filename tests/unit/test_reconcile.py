"""Range-based set reconciliation: two sides learn exactly what each lacks, in few rounds, for
sets that differ in any way; a malformed message is refused and changes nothing."""

from __future__ import annotations

import random

import pytest

from noosphere.federation.reconcile import (
    ID_BYTES,
    MAX_MESSAGES,
    Item,
    Malformed,
    Reconciler,
    Snapshot,
    item_id,
)


def _items(rng: random.Random, n: int) -> set[Item]:
    return {(rng.randrange(0, 10_000), item_id(f"memory-{rng.random()}")) for _ in range(n)}


def _sync(
    a: set[Item], b: set[Item], buckets: int = 16, leaf: int = 16, complete: bool = True
) -> tuple[Reconciler, Reconciler, int]:
    """Run the exchange to its end; the two sides and the number of messages sent."""
    first = Reconciler(Snapshot(a), buckets, leaf)
    second = Reconciler(Snapshot(b), buckets, leaf, initiator=False, complete=complete)
    message: bytes | None = first.initiate()
    sides, messages = [second, first], 1
    while message is not None:
        message = sides[0].respond(message)
        sides.reverse()
        messages += message is not None
        assert messages < 40, "the exchange does not end"
    return first, second, messages


@pytest.mark.parametrize(
    ("shared", "only_a", "only_b", "seed"),
    [
        (0, 0, 0, 1),
        (1000, 0, 0, 2),
        (0, 50, 0, 3),
        (0, 0, 50, 4),
        (5000, 1, 0, 5),
        (5000, 0, 1, 6),
        (5000, 30, 40, 7),
        (20_000, 300, 0, 8),
        (100, 2000, 2000, 9),
        (3, 1, 1, 10),
    ],
)
def test_the_initiator_learns_exactly_the_difference(
    shared: int, only_a: int, only_b: int, seed: int
) -> None:
    rng = random.Random(seed)
    common, extra_a, extra_b = _items(rng, shared), _items(rng, only_a), _items(rng, only_b)
    a, b = common | extra_a, common | extra_b
    ids = lambda items: {i for _, i in items}  # noqa: E731
    first, _, _ = _sync(a, b, complete=True)  # the responder tells the initiator everything
    assert first.outcome.have == ids(a - b)
    assert first.outcome.need == ids(b - a)
    first, second, _ = _sync(a, b, complete=False)  # each side learns part: together, all of it
    assert first.outcome.have | second.outcome.need == ids(a - b)
    assert first.outcome.need | second.outcome.have == ids(b - a)


@pytest.mark.parametrize("seed", range(5))
def test_items_stamped_before_since_take_no_part(seed: int) -> None:
    rng = random.Random(100 + seed)
    old_a = {(rng.randrange(0, 500), item_id(f"old-a-{i}")) for i in range(40)}
    old_b = {(rng.randrange(0, 500), item_id(f"old-b-{i}")) for i in range(40)}
    common = {(rng.randrange(500, 10_000), item_id(f"new-{i}")) for i in range(3000)}
    new_a = {(rng.randrange(500, 10_000), item_id(f"new-a-{i}")) for i in range(7)}
    first = Reconciler(Snapshot(old_a | common | new_a), since=500)
    second = Reconciler(Snapshot(old_b | common), initiator=False, since=500, complete=True)
    message: bytes | None = first.initiate()
    sides = [second, first]
    while message is not None:
        message = sides[0].respond(message)
        sides.reverse()
    assert first.outcome.have == {i for _, i in new_a}
    assert not first.outcome.need


def test_one_difference_among_many_costs_a_few_rounds_and_little() -> None:
    rng = random.Random(11)
    common = _items(rng, 20_000)
    extra = _items(rng, 1)
    first = Reconciler(Snapshot(common | extra))
    second = Reconciler(Snapshot(common), initiator=False, complete=True)
    sent, message, sides, messages = 0, first.initiate(), [second, first], 0
    while message is not None:
        sent += len(message)
        messages += 1
        message = sides[0].respond(message)
        sides.reverse()
    assert messages <= 6  # logarithmic in the set's size: 16 buckets a round
    assert sent < 0.05 * len(common) * ID_BYTES  # far less than sending every id
    assert first.outcome.have == {i for _, i in extra}


@pytest.mark.parametrize(
    "message",
    [
        b"\x01",  # a bound that ends early
        b"\x05\x11" + b"x" * 17,  # a prefix longer than an id
        b"\x00\x07",  # an unknown mode
        b"\x00\x01abc",  # a fingerprint cut short
        b"\x00\x02\xff\xff\xff\x0f",  # an id list longer than the message
        b"\x02\x00\x00\x02\x00\x00\x00",  # bounds that do not increase
        b"\x00\x00\x02\x00\x00",  # a range after the end
        b"\xff" * 12,  # a number too large
    ],
)
def test_a_malformed_message_is_refused_and_changes_nothing(message: bytes) -> None:
    side = Reconciler(Snapshot(_items(random.Random(12), 100)))
    with pytest.raises(Malformed):
        side.respond(message)
    assert not side.outcome.have and not side.outcome.need


def test_a_peer_that_never_ends_the_exchange_is_refused() -> None:
    rng = random.Random(13)
    mine = Reconciler(Snapshot(_items(rng, 1000)))
    pester = Reconciler(Snapshot(_items(rng, 1000))).initiate()  # differs everywhere, every time
    for _ in range(MAX_MESSAGES):
        mine.respond(pester)
    with pytest.raises(Malformed, match="messages"):
        mine.respond(pester)


def test_items_must_be_well_formed() -> None:
    with pytest.raises(ValueError, match="stamp"):
        Snapshot([(1, b"short")])
    with pytest.raises(ValueError, match="stamp"):
        Snapshot([(-1, b"x" * ID_BYTES)])
