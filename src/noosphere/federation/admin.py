"""What the node's owner changes about federation while it runs: peers added and removed at run
time (beside those of the config file) and the kill switch, each change audited. The running
``Federation`` takes changes up within a heartbeat (it reads the store's peers each round)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import ValidationError

from noosphere.config import FederationSettings, PeerSettings
from noosphere.errors import InvalidRequest, NotFound
from noosphere.federation.service import effective_peers
from noosphere.governance.audit import AuditLog
from noosphere.store.contract import ALL_PEERS, MemoryStore, StoredPeer

ACTOR = "admin"


@dataclass(frozen=True)
class PeerView:
    id: str
    url: str
    source: str  # config | added
    paused: bool


class PeerAdmin:
    def __init__(self, settings: FederationSettings, store: MemoryStore, audit: AuditLog) -> None:
        self.settings = settings
        self.store = store
        self.audit = audit

    async def peers(self) -> list[PeerView]:
        """Peers from the config and those added at run time, with whether each is paused."""
        peers = effective_peers(self.settings, await self.store.stored_peers(), await self.store.paused())
        declared = {p.id for p in self.settings.peers}
        return [
            PeerView(p.id, p.url, "config" if p.id in declared else "added", p.paused) for p in peers.values()
        ]

    async def add(self, peer_id: str, public_key: str, url: str) -> PeerSettings:
        """Federate with another node (or change the key or address of one added before)."""
        try:
            checked = PeerSettings(id=peer_id, public_key=public_key, url=url)
        except ValidationError as exc:
            raise InvalidRequest(str(exc.errors()[0]["msg"])) from None
        await self.store.put_peer(StoredPeer(checked.id, checked.public_key, checked.url, datetime.now(UTC)))
        await self.audit.append(ACTOR, "federation.peer_added", {"peer": checked.id, "url": checked.url})
        return checked

    async def remove(self, peer_id: str) -> None:
        """Stop federating with a peer added at run time (its records stay here)."""
        if peer_id in {p.id for p in self.settings.peers}:
            raise InvalidRequest(f"{peer_id} is declared in the config file: remove it there")
        if not await self.store.remove_peer(peer_id):
            raise NotFound(f"no peer {peer_id} was added here")
        await self.audit.append(ACTOR, "federation.peer_removed", {"peer": peer_id})

    async def switch(self, paused: bool, peer: str | None = None) -> bool:
        """Pause (or resume) federation with ``peer``, or all of it; False if it already was."""
        target = peer or ALL_PEERS
        changed = await self.store.set_paused(target, paused)
        if changed:
            kind = "federation.paused" if paused else "federation.resumed"
            await self.audit.append(ACTOR, kind, {"target": target})
        return changed


__all__ = ["PeerAdmin", "PeerView"]
