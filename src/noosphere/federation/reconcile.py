"""Range-based set reconciliation: two nodes find which items one has and the other lacks,
sending fingerprints of ranges instead of their whole id lists (the design of the Negentropy
protocol, written here from its description because no maintained Python implementation exists).

Items are ``(stamp, id)`` pairs in that order: a stamp (for memories, the version's clock) and a
16-byte id that is already a hash (uniform), so the sum of ids is a good fingerprint. A message is
a run of ranges that together cover everything from the start to the end of the order; each range
ends at an upper bound and says one of:

- ``SKIP``: nothing to do here;
- ``FINGERPRINT``: the sender's summary of its items in the range: the sum of their ids (mod
  2^128), their count, and a 4-byte check (the sum of another hash of each id). A receiver with the
  same summary answers ``SKIP``. When the counts differ by one and the check agrees, the difference
  of the sums *is* the one id that differs, so the range is settled at once (a range with a single
  difference is the common case near the leaves). Otherwise the receiver answers with its items'
  ids if it holds at most ``leaf`` of them, else with the summaries of ``buckets`` sub-ranges;
- ``IDS``: the sender's ids in the range: the receiver now knows, for that range, what it has that
  the sender lacks and what it lacks, and answers ``SKIP``; a responder whose ids differ answers
  ``DIFF`` instead, so the initiator knows too;
- ``DIFF``: the ids the receiver lacks, then the ids the sender lacks (only the differences).

Each round splits the ranges that differ, so the rounds grow with the logarithm of the set's size;
the exchange ends when a reply says ``SKIP`` everywhere. A ``Snapshot`` keeps prefix sums, so any
range's summary costs two binary searches, not a scan. Messages from a peer are parsed
defensively: a malformed one is ``Malformed`` and changes nothing.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field

ID_BYTES = 16
MODULUS = 1 << (8 * ID_BYTES)
SKIP, FINGERPRINT, IDS, DIFF = 0, 1, 2, 3
BUCKETS = 4  # chosen by bench/federation.py: the fewest bytes for many differences, in 4 round trips
LEAF = 8
MAX_MESSAGES = 64  # a real exchange needs about log4(items) rounds; a peer that goes on is refused

Item = tuple[int, bytes]  # (stamp, 16-byte id)
Bound = tuple[int, bytes]  # items strictly below it are in the range ending there
END: Bound = (-1, b"")  # the end of the order (encoded apart; compares specially below)
START: Bound = (0, b"")


class Malformed(ValueError):
    """A peer's message that cannot be read; nothing was changed."""


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def done(self) -> bool:
        return self.at >= len(self.data)

    def take(self, n: int) -> bytes:
        if n < 0 or self.at + n > len(self.data):
            raise Malformed("the message ends early")
        chunk = self.data[self.at : self.at + n]
        self.at += n
        return chunk

    def varint(self) -> int:
        value, shift = 0, 0
        while True:
            (byte,) = self.take(1)
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 63:
                raise Malformed("a number in the message is too large")


CHECK_MODULUS = 1 << 32


def _check(item_id: bytes) -> int:
    return int.from_bytes(hashlib.sha256(b"check:" + item_id).digest()[:4], "big")


@dataclass(frozen=True)
class Summary:
    total: int  # sum of the ids, mod 2^128
    count: int
    check: int  # sum of ``_check`` of the ids, mod 2^32

    def encode(self) -> bytes:
        return self.total.to_bytes(ID_BYTES, "big") + _varint(self.count) + self.check.to_bytes(4, "big")


class Snapshot:
    """A sorted set of items with prefix sums of their ids, for range fingerprints."""

    def __init__(self, items: Iterable[Item]) -> None:
        self.items = sorted(set(items))
        for stamp, item_id in self.items:
            if stamp < 0 or len(item_id) != ID_BYTES:
                raise ValueError(f"an item is a stamp >= 0 and a {ID_BYTES}-byte id")
        self._sums, self._checks = [0], [0]
        for _, item_id in self.items:
            self._sums.append((self._sums[-1] + int.from_bytes(item_id, "big")) % MODULUS)
            self._checks.append((self._checks[-1] + _check(item_id)) % CHECK_MODULUS)
        self._position = {item_id: i for i, (_, item_id) in enumerate(self.items)}

    def index(self, bound: Bound) -> int:
        """How many items lie below ``bound``."""
        return len(self.items) if bound == END else bisect_left(self.items, bound)

    def summary(self, lo: int, hi: int) -> Summary:
        total = (self._sums[hi] - self._sums[lo]) % MODULUS
        return Summary(total, hi - lo, (self._checks[hi] - self._checks[lo]) % CHECK_MODULUS)

    def holds(self, item_id: bytes, lo: int, hi: int) -> bool:
        """Whether ``item_id`` is among the items ``lo`` to ``hi``."""
        position = self._position.get(item_id)
        return position is not None and lo <= position < hi


@dataclass
class Outcome:
    """What one side learned: ids it has that the other lacks, and ids it lacks."""

    have: set[bytes] = field(default_factory=set)
    need: set[bytes] = field(default_factory=set)


@dataclass
class _Range:
    upper: Bound
    mode: int
    payload: Summary | list[bytes] | tuple[list[bytes], list[bytes]] | None = None


class Reconciler:
    """One side of an exchange; ``outcome`` is what it learned. A responder keeps no state
    between messages, so a node can answer each message of a peer's exchange on its own.

    Each side learns the part of the difference it settles itself (an id list, a range one id
    apart): what it lacks, and what the other side lacks. That costs least; the two sides then
    trade the records (``sync.py`` sends them with the messages). With ``complete``, a responder
    tells the initiator everything it settles (an id list that differs with the differences, a
    range one id apart with its own summary, so the initiator settles it too), and the initiator
    learns the whole difference: a full resynchronisation needs that.

    Only items stamped ``since`` or later take part (``0``: all of them)."""

    def __init__(
        self,
        snapshot: Snapshot,
        buckets: int = BUCKETS,
        leaf: int = LEAF,
        initiator: bool = True,
        since: int = 0,
        complete: bool = False,
    ) -> None:
        if buckets < 2 or leaf < 1:
            raise ValueError("buckets >= 2 and leaf >= 1")
        self.snapshot, self.buckets, self.leaf, self.initiator = snapshot, buckets, leaf, initiator
        self._complete = complete
        self.outcome = Outcome()
        self._answered = 0
        self._floor = snapshot.index((since, b"")) if since > 0 else 0

    def _index(self, bound: Bound) -> int:
        return max(self._floor, self.snapshot.index(bound))

    def initiate(self) -> bytes:
        """The first message: the whole order, split as a differing range would be."""
        return _encode(self._split(START, END, self._floor, len(self.snapshot.items)))

    def respond(self, message: bytes) -> bytes | None:
        """The reply to a peer's message; None when there is nothing left to say (done)."""
        self._answered += 1
        if self._answered > MAX_MESSAGES:
            raise Malformed(f"the exchange went past {MAX_MESSAGES} messages")
        out: list[_Range] = []
        lower = START
        for rng in _decode(message):
            lo, hi = self._index(lower), self._index(rng.upper)
            if rng.mode == FINGERPRINT:
                assert isinstance(rng.payload, Summary)
                out.extend(self._compare(rng.payload, lower, rng.upper, lo, hi))
            elif rng.mode == IDS:
                assert isinstance(rng.payload, list)
                mine = [item_id for _, item_id in self.snapshot.items[lo:hi]]
                theirs = set(rng.payload)
                have, need = set(mine) - theirs, theirs - set(mine)
                self.outcome.have |= have
                self.outcome.need |= need
                if (have or need) and self._complete and not self.initiator:
                    out.append(_Range(rng.upper, DIFF, (sorted(have), sorted(need))))
                else:
                    out.append(_Range(rng.upper, SKIP))
            elif rng.mode == DIFF:
                assert isinstance(rng.payload, tuple)
                lacking, extra = rng.payload
                self.outcome.need |= set(lacking)
                self.outcome.have |= set(extra)
                out.append(_Range(rng.upper, SKIP))
            else:
                out.append(_Range(rng.upper, SKIP))
            lower = rng.upper
        if all(r.mode == SKIP for r in out):
            return None
        return _encode(out)

    def _compare(self, theirs: Summary, lower: Bound, upper: Bound, lo: int, hi: int) -> list[_Range]:
        mine = self.snapshot.summary(lo, hi)
        if theirs == mine:
            return [_Range(upper, SKIP)]
        apart = self._one_apart(theirs, mine, lo, hi)
        if apart is None:
            return self._split(lower, upper, lo, hi)
        if self._complete and not self.initiator:  # the initiator settles it too, from this summary
            return [_Range(upper, FINGERPRINT, mine)]
        return [_Range(upper, SKIP)]

    def _one_apart(self, theirs: Summary, mine: Summary, lo: int, hi: int) -> tuple[bool, bytes] | None:
        """If the range is exactly one id apart: whether that id is held here, and the id (now
        in ``outcome``)."""
        if theirs.count == mine.count + 1:  # they may hold one id more
            extra = ((theirs.total - mine.total) % MODULUS).to_bytes(ID_BYTES, "big")
            if (mine.check + _check(extra)) % CHECK_MODULUS == theirs.check and not self.snapshot.holds(
                extra, lo, hi
            ):
                self.outcome.need.add(extra)
                return False, extra
        if mine.count == theirs.count + 1:  # we may hold one id more
            extra = ((mine.total - theirs.total) % MODULUS).to_bytes(ID_BYTES, "big")
            if (theirs.check + _check(extra)) % CHECK_MODULUS == mine.check and self.snapshot.holds(
                extra, lo, hi
            ):
                self.outcome.have.add(extra)
                return True, extra
        return None

    def _split(self, lower: Bound, upper: Bound, lo: int, hi: int) -> list[_Range]:
        items = self.snapshot.items
        if hi - lo <= self.leaf:
            return [_Range(upper, IDS, [item_id for _, item_id in items[lo:hi]])]
        out = []
        for k in range(1, self.buckets + 1):
            end = lo + (hi - lo) * k // self.buckets
            start = lo + (hi - lo) * (k - 1) // self.buckets
            bound = upper if k == self.buckets else _between(items[end - 1], items[end])
            out.append(_Range(bound, FINGERPRINT, self.snapshot.summary(start, end)))
        return out


def _between(before: Item, after: Item) -> Bound:
    """The shortest bound above ``before`` and not above ``after``."""
    if before[0] != after[0]:
        return (after[0], b"")
    shared = 0
    while shared < ID_BYTES and before[1][shared] == after[1][shared]:
        shared += 1
    return (after[0], after[1][: shared + 1])


def _encode(ranges: list[_Range]) -> bytes:
    # Runs of SKIP merge into one; a trailing SKIP up to the end is left out.
    merged: list[_Range] = []
    for rng in ranges:
        if merged and merged[-1].mode == SKIP and rng.mode == SKIP:
            merged[-1] = rng
        else:
            merged.append(rng)
    if merged and merged[-1].mode == SKIP and merged[-1].upper == END:
        merged.pop()
    out = bytearray()
    previous = 0
    for rng in merged:
        if rng.upper == END:
            out += _varint(0)
        else:
            stamp, prefix = rng.upper
            out += _varint(stamp - previous + 1) + bytes([len(prefix)]) + prefix
            previous = stamp
        out.append(rng.mode)
        if rng.mode == FINGERPRINT:
            assert isinstance(rng.payload, Summary)
            out += rng.payload.encode()
        elif rng.mode == IDS:
            assert isinstance(rng.payload, list)
            out += _varint(len(rng.payload)) + b"".join(rng.payload)
        elif rng.mode == DIFF:
            assert isinstance(rng.payload, tuple)
            for ids in rng.payload:
                out += _varint(len(ids)) + b"".join(ids)
    return bytes(out)


def _decode(message: bytes) -> list[_Range]:
    reader, ranges, previous, last = _Reader(message), [], 0, START
    while not reader.done():
        if last == END:
            raise Malformed("a range follows the end")
        delta = reader.varint()
        if delta == 0:
            bound = END
        else:
            stamp = previous + delta - 1
            length = reader.take(1)[0]
            if length > ID_BYTES:
                raise Malformed("a bound's id prefix is too long")
            bound = (stamp, reader.take(length))
            if bound <= last:
                raise Malformed("the ranges' bounds must increase")
            previous = stamp
        mode = reader.take(1)[0]
        if mode == FINGERPRINT:
            total = int.from_bytes(reader.take(ID_BYTES), "big")
            count = reader.varint()
            ranges.append(_Range(bound, mode, Summary(total, count, int.from_bytes(reader.take(4), "big"))))
        elif mode == IDS:
            ranges.append(_Range(bound, mode, _ids(reader, len(message))))
        elif mode == DIFF:
            lacking = _ids(reader, len(message))
            ranges.append(_Range(bound, mode, (lacking, _ids(reader, len(message)))))
        elif mode == SKIP:
            ranges.append(_Range(bound, mode))
        else:
            raise Malformed(f"unknown range mode {mode}")
        last = bound
    if last != END:
        ranges.append(_Range(END, SKIP))  # the rest, left out by the sender: nothing to do
    return ranges


def _ids(reader: _Reader, limit: int) -> list[bytes]:
    count = reader.varint()
    if count * ID_BYTES > limit:
        raise Malformed("an id list is longer than the message")
    data = reader.take(count * ID_BYTES)
    return [data[i : i + ID_BYTES] for i in range(0, len(data), ID_BYTES)]


def item_id(key: str) -> bytes:
    """A 16-byte id for any text key (a memory's id and version), as reconciliation needs."""
    return hashlib.sha256(key.encode()).digest()[:ID_BYTES]


__all__ = [
    "BUCKETS",
    "END",
    "ID_BYTES",
    "LEAF",
    "Malformed",
    "Outcome",
    "Reconciler",
    "Snapshot",
    "Summary",
    "item_id",
]
