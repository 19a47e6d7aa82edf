"""REST: the owner's controls over federation (``/api/v1/federation``): peers added and removed at
run time, each peer's live state, and the kill switch. The peer-to-peer protocol itself is
``federation_api.py`` (``/federation/v1``), where nodes sign their requests."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from noosphere.federation.admin import PeerAdmin
from noosphere.server.deps import NodeDep

router = APIRouter(prefix="/api/v1/federation", tags=["federation"])


class PeerIn(BaseModel):
    id: str = Field(max_length=64, description="The peer's id (`noosphere node show` there).")
    public_key: str = Field(max_length=128, description="The peer's Ed25519 public key, base64.")
    url: str = Field(max_length=2048, description="Where the peer answers, e.g. https://garage.example:3099.")


class PeerOut(BaseModel):
    id: str
    url: str
    source: str = Field(description="`config` (the config file) or `added` (at run time).")
    paused: bool
    state: str | None = Field(None, description="alive, suspect or dead, while the node runs.")
    sync_lag_seconds: float | None = Field(
        None, description="Seconds since its change feed was last read to the end (None: not yet)."
    )


class SwitchIn(BaseModel):
    peer: str | None = Field(None, max_length=64, description="One peer; default: all federation.")


class Switched(BaseModel):
    target: str
    paused: bool
    changed: bool = Field(description="False: it was so already.")


def _admin(node: NodeDep) -> PeerAdmin:
    return PeerAdmin(node.settings.federation, node.store, node.audit)


def _live(request: Request) -> Any:
    return getattr(request.app.state, "federation", None)


@router.get("/peers", summary="Peers with their source, pause, live state and sync lag")
async def list_peers(request: Request, node: NodeDep) -> list[PeerOut]:
    federation = _live(request)
    states = {} if federation is None else federation.states()
    synced = {} if federation is None else federation.synced_at
    now = time.time()
    return [
        PeerOut(
            id=p.id,
            url=p.url,
            source=p.source,
            paused=p.paused,
            state=states.get(p.id),
            sync_lag_seconds=None if p.id not in synced else round(now - synced[p.id], 3),
        )
        for p in await _admin(node).peers()
    ]


@router.post("/peers", status_code=201, summary="Federate with another node (or change one added before)")
async def add_peer(body: PeerIn, node: NodeDep) -> PeerOut:
    peer = await _admin(node).add(body.id, body.public_key, body.url)
    return PeerOut(id=peer.id, url=peer.url, source="added", paused=peer.paused)


@router.delete("/peers/{peer_id}", status_code=204, summary="Stop federating with a peer added at run time")
async def remove_peer(peer_id: str, node: NodeDep) -> None:
    await _admin(node).remove(peer_id)


@router.post("/pause", summary="Stop federation, both ways, with one peer or all of them")
async def pause(body: SwitchIn, node: NodeDep) -> Switched:
    changed = await _admin(node).switch(True, body.peer)
    return Switched(target=body.peer or "*", paused=True, changed=changed)


@router.post("/resume", summary="Undo a pause (a pause written in the config file stays)")
async def resume(body: SwitchIn, node: NodeDep) -> Switched:
    changed = await _admin(node).switch(False, body.peer)
    return Switched(target=body.peer or "*", paused=False, changed=changed)


__all__ = ["router"]
