"""Which peers are alive: the decision, apart from the network that feeds it.

A peer is ``alive`` while its heartbeats arrive; ``suspect`` once it has been silent for
``suspect_after``; ``dead`` once it stays silent for ``dead_factor`` times that again; and
``alive`` again as soon as it is heard from. The silence allowed grows with the number of peers
(more peers, more chance one heartbeat is merely late: SWIM's scaled timeouts) and with this
node's own ill health.

Lifeguard's insight: a node whose own event loop stalls misses heartbeats that did arrive, and
would blame its peers for its own lateness. So each tick reports how late it ran. A late tick
(more than ``interval / 2``) raises the node's health score (up to ``MAX_HEALTH``), an on-time
one lowers it, and every timeout is multiplied by ``1 + score``; the time a tick was late is not
counted as anyone's silence. A node stalled for 5 s therefore declares no one dead when it
wakes. Pure and clock-free: callers pass the times, so the rules are tested as a table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

MAX_HEALTH = 8


class PeerState(StrEnum):
    ALIVE = "alive"
    SUSPECT = "suspect"
    DEAD = "dead"


@dataclass
class _Peer:
    state: PeerState
    silent_since: float  # when it was last heard from, moved on by this node's own late ticks
    suspected_at: float = 0.0


@dataclass
class Membership:
    interval: float = 2.0  # seconds between heartbeats
    base: float = 3.0  # heartbeats a peer may miss in a cluster of two, when healthy
    dead_factor: float = 3.0  # a suspect is dead after this many suspicion timeouts
    health: int = 0  # 0: this node keeps time; up to MAX_HEALTH: it does not
    _peers: dict[str, _Peer] = field(default_factory=dict)

    def state(self, peer: str) -> PeerState | None:
        entry = self._peers.get(peer)
        return None if entry is None else entry.state

    def states(self) -> dict[str, PeerState]:
        return {peer: entry.state for peer, entry in self._peers.items()}

    def add(self, peer: str, now: float) -> None:
        """A configured peer, given the benefit of the doubt until its first heartbeat is due."""
        self._peers.setdefault(peer, _Peer(PeerState.ALIVE, now))

    def remove(self, peer: str) -> None:
        self._peers.pop(peer, None)

    def heard(self, peer: str, now: float) -> PeerState | None:
        """A heartbeat (or any signed request) from ``peer``; its previous state if it changed."""
        entry = self._peers.get(peer)
        if entry is None:
            return None
        entry.silent_since = max(entry.silent_since, now)
        previous, entry.state = entry.state, PeerState.ALIVE
        return previous if previous is not PeerState.ALIVE else None

    def suspect_after(self) -> float:
        """Silence before suspicion: longer with more peers and when this node is unwell."""
        size = max(len(self._peers) + 1, 2)
        return self.interval * self.base * math.log2(size) * (1 + self.health)

    def tick(self, now: float, lateness: float) -> dict[str, PeerState]:
        """One periodic check, which ran ``lateness`` seconds after it was due; the peers whose
        state changed, with their new state."""
        if lateness > self.interval / 2:
            self.health = min(MAX_HEALTH, self.health + 1)
            for entry in self._peers.values():  # our stall is no one's silence
                entry.silent_since += lateness
                entry.suspected_at += lateness
        elif self.health:
            self.health -= 1
        suspicion = self.suspect_after()
        changed: dict[str, PeerState] = {}
        for peer, entry in self._peers.items():
            silent = now - entry.silent_since
            if entry.state is PeerState.ALIVE and silent > suspicion:
                entry.state, entry.suspected_at = PeerState.SUSPECT, now
                changed[peer] = entry.state
            elif entry.state is PeerState.SUSPECT and now - entry.suspected_at > suspicion * self.dead_factor:
                entry.state = PeerState.DEAD
                changed[peer] = entry.state
        return changed


__all__ = ["MAX_HEALTH", "Membership", "PeerState"]
