"""``noosphere peers add|list|remove`` and ``noosphere federation pause|resume``: the node's peers
and its kill switch, changed while it runs (it reads them every heartbeat interval)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from pydantic import ValidationError

from noosphere.cli.common import (
    ConfigOpt,
    DataDirOpt,
    JsonOpt,
    TokenOpt,
    console,
    emit_json,
    opened_node,
    record_command,
    run,
)
from noosphere.config import PeerSettings
from noosphere.errors import InvalidRequest
from noosphere.federation.service import effective_peers
from noosphere.store.contract import ALL_PEERS, StoredPeer

peers_app = typer.Typer(callback=record_command, help="This node's federation peers.", no_args_is_help=True)
federation_app = typer.Typer(callback=record_command, help="Federation's kill switch.", no_args_is_help=True)
PeerOpt = Annotated[str | None, typer.Option("--peer", help="Only this peer (default: all federation).")]


@peers_app.command("add")
def add(
    peer_id: Annotated[str, typer.Argument(help="The peer's id (`noosphere node show` there).")],
    public_key: Annotated[str, typer.Argument(help="The peer's public key, base64.")],
    url: Annotated[str, typer.Argument(help="Where the peer answers, e.g. https://garage.example:3099.")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
) -> None:
    """Federate with another node (or change the key or address of one added before)."""
    try:
        checked = PeerSettings(id=peer_id, public_key=public_key, url=url)
    except ValidationError as exc:
        raise InvalidRequest(str(exc.errors()[0]["msg"])) from None

    async def go() -> None:
        async with opened_node(config, data_dir, token) as node:
            peer = StoredPeer(checked.id, checked.public_key, checked.url, datetime.now(UTC))
            await node.store.put_peer(peer)
            await node.audit.append("admin", "federation.peer_added", {"peer": peer.id, "url": peer.url})

    run(go)
    console.print(f"peer {checked.id} added; the running node takes it up within a heartbeat")


@peers_app.command("list")
def listing(
    config: ConfigOpt = None, data_dir: DataDirOpt = None, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Peers from the config and those added here, with whether each is paused."""

    async def go() -> list[dict[str, object]]:
        async with opened_node(config, data_dir, token) as node:
            settings = node.settings.federation
            peers = effective_peers(settings, await node.store.stored_peers(), await node.store.paused())
            declared = {p.id for p in settings.peers}
            return [
                {
                    "id": p.id,
                    "url": p.url,
                    "source": "config" if p.id in declared else "added",
                    "paused": p.paused,
                }
                for p in peers.values()
            ]

    rows = run(go)
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        typer.echo(f"{row['id']}  {row['url']}  {row['source']}{'  paused' if row['paused'] else ''}")


@peers_app.command("remove")
def remove(
    peer_id: Annotated[str, typer.Argument(help="The peer's id.")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
) -> None:
    """Stop federating with a peer added with `peers add` (its records stay here)."""

    async def go() -> None:
        async with opened_node(config, data_dir, token) as node:
            if peer_id in {p.id for p in node.settings.federation.peers}:
                raise InvalidRequest(f"{peer_id} is declared in the config file: remove it there")
            if not await node.store.remove_peer(peer_id):
                raise InvalidRequest(f"no peer {peer_id} was added here")
            await node.audit.append("admin", "federation.peer_removed", {"peer": peer_id})

    run(go)
    console.print(f"peer {peer_id} removed")


def _switch(paused: bool, peer: str | None, config: ConfigOpt, data_dir: DataDirOpt, token: TokenOpt) -> None:
    target = peer or ALL_PEERS

    async def go() -> bool:
        async with opened_node(config, data_dir, token) as node:
            changed = await node.store.set_paused(target, paused)
            if changed:
                kind = "federation.paused" if paused else "federation.resumed"
                await node.audit.append("admin", kind, {"target": target})
            return changed

    changed = run(go)
    what = "all federation" if peer is None else f"federation with {peer}"
    state = "paused" if paused else "resumed"
    console.print(f"{what} {state}" + ("" if changed else f" (it was {state} already)"))


@federation_app.command("pause")
def pause(
    peer: PeerOpt = None, config: ConfigOpt = None, data_dir: DataDirOpt = None, token: TokenOpt = None
) -> None:
    """Stop federation, both ways, with one peer or all of them, until resumed."""
    _switch(True, peer, config, data_dir, token)


@federation_app.command("resume")
def resume(
    peer: PeerOpt = None, config: ConfigOpt = None, data_dir: DataDirOpt = None, token: TokenOpt = None
) -> None:
    """Undo `federation pause` (a pause written in the config file stays)."""
    _switch(False, peer, config, data_dir, token)
