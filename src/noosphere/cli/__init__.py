"""The ``noosphere`` command. Thin: parse options, call the node's services, print."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from noosphere.cli import (
    agent_package,  # noqa: F401 - registers `agent export` and `agent import`
    approvals,
    audit,
    bus,
    jobs,
    keys,
    memory,
    node,
    peers,
    pool,
    principals,
    worker,
)
from noosphere.cli import run as run_cli
from noosphere.cli.common import ConfigOpt, DataDirOpt, TokenOpt, console, record_command, run, settings_from
from noosphere.config import Settings
from noosphere.errors import NoosphereError

app = typer.Typer(
    callback=record_command,
    help="noosphere: shared memory, models and governance for LLM agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(memory.app, name="memory")
app.add_typer(principals.agent_app, name="agent")
app.add_typer(principals.user_app, name="user")
app.command("worker")(worker.worker)
app.command("worker-token")(worker.worker_token)
app.add_typer(keys.key_app, name="key")
app.command("usage")(keys.usage)
app.command("pool")(pool.pool)
app.add_typer(audit.audit_app, name="audit")
app.add_typer(node.node_app, name="node")
app.add_typer(peers.peers_app, name="peers")
app.add_typer(peers.federation_app, name="federation")
app.add_typer(bus.bus_app, name="bus")
app.add_typer(approvals.approvals_app, name="approvals")
app.add_typer(jobs.jobs_app, name="jobs")
app.command("run")(run_cli.run_agent)


@app.command()
def up(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 3099).")] = None,
    no_local_worker: Annotated[
        bool, typer.Option("--no-local-worker", help="Do not attach the local llama.cpp model.")
    ] = False,
) -> None:
    """Start a node: OpenAI API, memory API, MCP endpoint and docs on one port, with a local
    SmolLM2 worker attached. Ctrl-C stops it cleanly."""
    from noosphere.server.runner import serve

    settings = run_settings(config, data_dir, host, port)
    if no_local_worker:
        settings.pool.local_worker = False
    serve(settings)


def run_settings(config: Path | None, data_dir: Path | None, host: str | None, port: int | None) -> Settings:

    try:
        return settings_from(config, data_dir, server__host=host, server__port=port)
    except NoosphereError as exc:
        console.print(f"[red]error[/red] ({exc.code}): {exc.message}")
        raise typer.Exit(1) from None


@app.command()
def mcp(config: ConfigOpt = None, data_dir: DataDirOpt = None, token: TokenOpt = None) -> None:
    """Serve the memory tools over MCP on stdin/stdout (for MCP clients that launch a command)."""
    from noosphere.server.mcp_stdio import serve_stdio

    settings = run_settings(config, data_dir, None, None)
    run(lambda: serve_stdio(settings, token))


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # it logs every request at INFO
    app()
