"""``noosphere peers add|list|remove`` and ``noosphere federation pause|resume``, through the node's
API (``/api/v1/federation``); a running node takes a change up within a heartbeat."""

from __future__ import annotations

from typing import Annotated

import typer

from noosphere.cli.client import segment
from noosphere.cli.options import ConfigOpt, DataDirOpt, JsonOpt, TokenOpt, call, record_command
from noosphere.cli.output import console, emit_json

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
    body = {"id": peer_id, "public_key": public_key, "url": url}
    peer = call(config, data_dir, token, "POST", "/api/v1/federation/peers", body)
    console.print(f"peer {peer['id']} added; the running node takes it up within a heartbeat")


@peers_app.command("list")
def listing(
    config: ConfigOpt = None, data_dir: DataDirOpt = None, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Peers from the config and those added here, with whether each is paused and its state."""
    rows = call(config, data_dir, token, "GET", "/api/v1/federation/peers")
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        state = f"  {row['state']}" if row["state"] else ""
        typer.echo(f"{row['id']}  {row['url']}  {row['source']}{'  paused' if row['paused'] else ''}{state}")


@peers_app.command("remove")
def remove(
    peer_id: Annotated[str, typer.Argument(help="The peer's id.")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
) -> None:
    """Stop federating with a peer added with `peers add` (its records stay here)."""
    call(config, data_dir, token, "DELETE", f"/api/v1/federation/peers/{segment(peer_id)}")
    console.print(f"peer {peer_id} removed")


def _switch(paused: bool, peer: str | None, config: ConfigOpt, data_dir: DataDirOpt, token: TokenOpt) -> None:
    path = "/api/v1/federation/pause" if paused else "/api/v1/federation/resume"
    changed = call(config, data_dir, token, "POST", path, {"peer": peer})["changed"]
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
