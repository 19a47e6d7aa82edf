"""``noosphere pool``: a running node's workers, their checks and load (asks the node over HTTP)."""

from __future__ import annotations

from typing import Annotated

import httpx
import typer
from rich.table import Table

from noosphere.cli.common import (
    ConfigOpt,
    DataDirOpt,
    JsonOpt,
    TokenOpt,
    admin_token,
    console,
    emit_json,
    settings_from,
)


def pool(
    url: Annotated[
        str | None, typer.Option(help="The node (default: from the config, http://127.0.0.1:3099).")
    ] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the pool of a running node: workers, health checks, load, queue."""
    settings = settings_from(config, data_dir)
    base = url or f"http://{settings.server.host}:{settings.server.port}"
    try:
        response = httpx.get(
            f"{base}/api/v1/pool",
            headers={"Authorization": f"Bearer {token or admin_token(settings)}"},
            timeout=10,
        )
    except httpx.HTTPError as exc:
        console.print(f"[red]error[/red]: no node answering at {base} ({exc})")
        raise typer.Exit(1) from None
    if response.status_code != 200:
        error = response.json().get("error", {})
        console.print(f"[red]error[/red] ({error.get('code')}): {error.get('message')}")
        raise typer.Exit(1)
    status = response.json()
    if as_json:
        emit_json(status)
        return
    table = Table("worker", "kind", "models", "load", "healthy", "tokens/s", "last check")
    for w in status["workers"]:
        check = w["last_check"]
        table.add_row(
            w["name"],
            w["kind"],
            ", ".join(w["models"]),
            f"{w['running']}/{w['capacity']}",
            "yes" if w["healthy"] else "[red]no[/red]",
            f"{w['throughput_tokens_per_s']:g}",
            "-" if check is None else f"{check['reason']} ({check['seconds_ago']:.0f}s ago)",
        )
    console.print(table)
    console.print(f"{status['queued']} requests waiting")
