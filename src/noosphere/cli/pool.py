"""``noosphere pool``: a running node's workers, their checks and load."""

from __future__ import annotations

from noosphere.cli.client import api
from noosphere.cli.options import ConfigOpt, DataDirOpt, JsonOpt, TokenOpt, UrlOpt, running
from noosphere.cli.output import console, emit_json, table


def pool(
    url: UrlOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the pool of a running node: workers, health checks, load, queue."""
    with api(running(config, data_dir, url), token) as node:
        status = node.call("GET", "/api/v1/pool", timeout=10)
    if as_json:
        emit_json(status)
        return
    shown = table("worker", "kind", "models", "load", "healthy", "tokens/s", "last check")
    for w in status["workers"]:
        check = w["last_check"]
        shown.add_row(
            w["name"],
            w["kind"],
            ", ".join(w["models"]),
            f"{w['running']}/{w['capacity']}",
            "yes" if w["healthy"] else "[red]no[/red]",
            f"{w['throughput_tokens_per_s']:g}",
            "-" if check is None else f"{check['reason']} ({check['seconds_ago']:.0f}s ago)",
        )
    console.print(shown)
    if (local := status.get("local_worker")) is not None:
        exited = f"; last {local['last_exit']}" if local["last_exit"] else ""
        console.print(
            f"local worker process: {local['state']} (pid {local['pid'] or '-'}, "
            f"{local['restarts']} restarts{exited})"
        )
    console.print(f"{status['queued']} requests waiting")
