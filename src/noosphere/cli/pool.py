"""``noosphere pool``: a running node's workers, their checks and load (asks the node over HTTP)."""

from __future__ import annotations

from rich.table import Table

from noosphere.cli.common import (
    ConfigOpt,
    DataDirOpt,
    JsonOpt,
    TokenOpt,
    UrlOpt,
    ask_node,
    console,
    emit_json,
    settings_from,
)


def pool(
    url: UrlOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the pool of a running node: workers, health checks, load, queue."""
    status = ask_node(settings_from(config, data_dir), url, token, "GET", "/api/v1/pool", timeout=10)
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
    if (local := status.get("local_worker")) is not None:
        exited = f"; last {local['last_exit']}" if local["last_exit"] else ""
        console.print(
            f"local worker process: {local['state']} (pid {local['pid'] or '-'}, "
            f"{local['restarts']} restarts{exited})"
        )
    console.print(f"{status['queued']} requests waiting")
