"""The ``noosphere`` command. Thin: parse options, call the node's API, print.

A running node is asked over HTTP (``client.py``); offline, the same routes are served in this
process. Command modules import nothing heavy at the top: ``noosphere --help`` and a command
against a running node load only typer, rich and the few modules they use."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from noosphere.cli import (
    agent_package,  # noqa: F401 - registers `agent export` and `agent import`
    approvals,
    audit,
    bus,
    cluster,
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
from noosphere.cli.options import ConfigOpt, DataDirOpt, TokenOpt, record_command
from noosphere.cli.output import console

if TYPE_CHECKING:
    from noosphere.config import Settings

app = typer.Typer(
    callback=record_command,
    help="noosphere: shared memory, models and governance for LLM agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: rendering it with rich costs 0.1 s of imports
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
app.add_typer(cluster.cluster_app, name="cluster")
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
    log_format: Annotated[
        Literal["text", "json"],
        typer.Option(
            "--log-format",
            help="text, or json: one JSON object per line, each with its request id.",
            envvar="NOOSPHERE_LOG_FORMAT",
        ),
    ] = "text",
) -> None:
    """Start a node: OpenAI API, memory API, MCP endpoint and docs on one port, with a local
    SmolLM2 worker attached. Ctrl-C stops it cleanly."""
    from noosphere import allocator

    allocator.tune()  # first, before any thread starts
    from noosphere import logs, runfile
    from noosphere.server.runner import serve

    logs.configure(log_format)
    settings = run_settings(config, data_dir, host, port)
    already = runfile.read(settings.data_dir)
    if already is not None and already.alive:
        console.print(
            f"[red]error[/red] (node_running): a node already runs on {settings.data_dir} "
            f"(pid {already.pid}, {already.url})"
        )
        raise typer.Exit(1)
    if no_local_worker:
        settings.pool.local_worker = False
    serve(settings, config)


def run_settings(config: Path | None, data_dir: Path | None, host: str | None, port: int | None) -> Settings:
    from noosphere.config import load_settings
    from noosphere.errors import NoosphereError

    try:
        return load_settings(config, data_dir=data_dir, server__host=host, server__port=port)
    except NoosphereError as exc:
        console.print(f"[red]error[/red] ({exc.code}): {exc.message}")
        raise typer.Exit(1) from None


@app.command()
def mcp(config: ConfigOpt = None, data_dir: DataDirOpt = None, token: TokenOpt = None) -> None:
    """Serve the memory tools over MCP on stdin/stdout (for MCP clients that launch a command):
    relayed to the running node's /mcp, or served from the data directory when no node runs."""
    from noosphere.cli.client import fail
    from noosphere.cli.common import run, settings_from
    from noosphere.cli.options import where
    from noosphere.errors import NoosphereError

    target = where(config, data_dir)
    if target.url is not None:
        import anyio

        from noosphere.server.mcp_relay import relay

        try:
            caller = token or target.admin_token()
        except NoosphereError as exc:
            fail(exc.code, exc.message)
        anyio.run(relay, target.url, caller)
        return
    from noosphere.server.mcp_stdio import serve_stdio

    settings = settings_from(config, data_dir)
    run(lambda: serve_stdio(settings, token))


def main() -> None:
    import logging

    # Commands print what they did; the log says only what went wrong (a node logs more: ``up``).
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()
