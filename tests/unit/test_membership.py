"""Peers' liveness as a table of heartbeats and ticks: silence makes a peer suspect, then dead;
hearing from it brings it back; timeouts grow with the cluster; and a node whose own loop stalls
blames no one for it."""

from __future__ import annotations

import pytest

from noosphere.federation.membership import MAX_HEALTH, Membership, PeerState

ALIVE, SUSPECT, DEAD = PeerState.ALIVE, PeerState.SUSPECT, PeerState.DEAD


def _cluster(peers: int) -> Membership:
    members = Membership(interval=2.0, base=3.0, dead_factor=3.0)
    for n in range(peers):
        members.add(f"p{n}", 0.0)
    return members


def _run(members: Membership, until: float, heard: frozenset[str] = frozenset(), step: float = 1.0) -> None:
    """On-time ticks every ``step`` seconds up to ``until``, hearing from ``heard`` at each."""
    now = 0.0
    while now < until:
        now += step
        for peer in heard:
            members.heard(peer, now)
        members.tick(now, 0.0)


def test_a_silent_peer_becomes_suspect_then_dead_and_comes_back_when_heard() -> None:
    members = _cluster(1)
    assert members.suspect_after() == pytest.approx(6.0)  # two nodes: 3 heartbeats of 2 s
    assert members.tick(5.0, 0.0) == {}
    assert members.tick(7.0, 0.0) == {"p0": SUSPECT}
    assert members.tick(20.0, 0.0) == {}  # suspect for 13 s: not yet 3 x 6
    assert members.tick(26.0, 0.0) == {"p0": DEAD}
    assert members.heard("p0", 30.0) is DEAD  # it was dead; it is alive again
    assert members.state("p0") is ALIVE
    assert members.heard("p0", 31.0) is None  # no change


def test_only_the_silent_peer_is_suspected() -> None:
    members = _cluster(3)
    _run(members, 60.0, heard=frozenset({"p0", "p2"}))  # 4 nodes: suspect after 12 s, dead 36 s later
    assert members.states() == {"p0": ALIVE, "p1": DEAD, "p2": ALIVE}


@pytest.mark.parametrize(
    ("peers", "silent_for", "expected"),
    [
        (1, 10.0, SUSPECT),  # 2 nodes: suspicion after 6 s
        (4, 10.0, ALIVE),  # 5 nodes: after 6 x log2(5) = 13.9 s
        (4, 15.0, SUSPECT),
        (19, 15.0, ALIVE),  # 20 nodes: after 6 x log2(20) = 25.9 s
        (19, 27.0, SUSPECT),
    ],
)
def test_timeouts_grow_with_the_cluster(peers: int, silent_for: float, expected: PeerState) -> None:
    members = _cluster(peers)
    members.tick(silent_for, 0.0)
    assert members.state("p0") is expected


def test_a_node_whose_own_loop_stalled_for_5_s_declares_no_one_dead() -> None:
    members = Membership(interval=0.5, base=3.0, dead_factor=3.0)  # suspicion after 1.5 s
    for peer in ("p0", "p1"):
        members.add(peer, 0.0)
    now = 0.0
    while now < 10.0:  # everyone heard until t=10
        now += 0.5
        members.heard("p0", now)
        members.heard("p1", now)
        members.tick(now, 0.0)
    # The loop stalls from t=10 to t=15.5: the heartbeats of that time wait in its queue, and the
    # tick due at t=10.5 runs at t=15.5, 5 s late, before it reads them. Counted as the peers'
    # silence, 5.5 s would make both suspect (and soon dead).
    assert members.tick(15.5, 5.0) == {}
    assert members.health == 1  # it doubts its own judgement for a while
    now = 15.5
    while now < 40.0:  # on time again: peers keep talking, health recovers
        now += 0.5
        members.heard("p0", now)
        members.heard("p1", now)
        members.tick(now, 0.0)
    assert set(members.states().values()) == {ALIVE}
    assert members.health == 0


def test_a_node_that_keeps_running_late_waits_longer_before_suspecting() -> None:
    members = _cluster(1)
    healthy = members.suspect_after()
    for k in range(1, 20):
        members.tick(k * 0.1, 1.5)  # every tick 1.5 s late
    assert members.health == MAX_HEALTH
    assert members.suspect_after() == pytest.approx(healthy * (1 + MAX_HEALTH))


def test_unknown_or_removed_peers_are_ignored() -> None:
    members = _cluster(1)
    assert members.heard("stranger", 1.0) is None and members.state("stranger") is None
    members.remove("p0")
    assert members.tick(100.0, 0.0) == {} and members.states() == {}
