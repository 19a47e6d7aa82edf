"""``noosphere node show``: who this node is (its id, public key and name), before or after it
first starts, so peers can be configured ahead of time."""

from __future__ import annotations

import typer

from noosphere.cli.options import ConfigOpt, DataDirOpt, JsonOpt, record_command
from noosphere.cli.output import emit_json

node_app = typer.Typer(callback=record_command, help="This node's identity.", no_args_is_help=True)


@node_app.command("show")
def show(config: ConfigOpt = None, data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Print the node's id, public key and name; creates the key in a new data directory."""
    from noosphere.cli.common import settings_from
    from noosphere.identity import load_or_create
    from noosphere.node import private_directory

    settings = settings_from(config, data_dir)
    private_directory(settings.data_dir)  # 0700: it holds the private key
    key = load_or_create(settings.data_dir)
    identity = {
        "id": key.id,
        "public_key": key.public_text,
        "name": settings.name,
        "data_dir": str(settings.data_dir.resolve()),
    }
    if as_json:
        emit_json(identity)
        return
    for field, value in identity.items():
        typer.echo(f"{field:<11} {value}")
