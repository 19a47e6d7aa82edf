"""``noosphere up``: serve the app with uvicorn and say where everything is."""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Callable
from pathlib import Path

import uvicorn
from rich.console import Console

from noosphere import runfile
from noosphere.auth.names import ADMIN_TOKEN_FILE
from noosphere.config import Settings
from noosphere.node import Node
from noosphere.pool.backends.base import BackendError
from noosphere.pool.backends.llama import bundled_smollm2
from noosphere.runfile import RunInfo
from noosphere.server.app import create_app, local_base


def _announce(
    settings: Settings, console: Console, model: Path | None, config: Path | None
) -> Callable[[Node], None]:
    def ready(node: Node) -> None:
        host = settings.server.host
        shown = f"[{host}]" if ":" in host else host
        base = f"http://{shown}:{settings.server.port}"
        # From now on the CLI on this data directory talks to this process (``runfile.py``).
        where = None if config is None else str(config.resolve())
        runfile.write(
            settings.data_dir, RunInfo(os.getpid(), local_base(settings), where, settings.storage.backend)
        )
        console.print(
            f"[bold]noosphere[/bold] node [cyan]{settings.name}[/cyan] ({node.key.id}) is up "
            f"({settings.storage.backend}, data in {settings.data_dir})"
        )
        console.print(f"  dashboard  {base}/     (sign in with the admin token)")
        console.print(f"  OpenAI API {base}/v1   (chat/completions, models, embeddings)")
        console.print(f"  REST API   {base}/api/v1/memories")
        console.print(f"  MCP        {base}/mcp   (Streamable HTTP, bearer token)")
        console.print(f"  API docs   {base}/docs")
        console.print(f"  workers    {base.replace('http', 'ws', 1)}/ws/worker")
        if model is not None:
            console.print(
                f"  local model [cyan]{settings.pool.local_model_name}[/cyan] "
                "(llama.cpp, in a supervised worker process)"
            )
        if node.new_admin_token:
            console.print(
                "  admin token (shown once; also saved to "
                f"{settings.data_dir / ADMIN_TOKEN_FILE}, mode 0600):"
            )
            console.print(f"    {node.new_admin_token}", highlight=False)
        console.print("  Ctrl-C to stop")

    return ready


def local_model(settings: Settings, console: Console) -> Path | None:
    """The GGUF file ``up`` serves through its local worker process, unless disabled or missing
    (then say why)."""
    pool = settings.pool
    if not pool.local_worker:
        return None
    try:
        path = pool.local_model_path or bundled_smollm2()
    except BackendError as exc:
        console.print(f"[yellow]no local worker[/yellow]: {exc.message}")
        return None
    if not path.is_file():
        console.print(f"[yellow]no local worker[/yellow]: no model file at {path}")
        return None
    if importlib.util.find_spec("llama_cpp") is None:
        console.print("[yellow]no local worker[/yellow]: it needs llama-cpp-python (make install)")
        return None
    return path


def serve(settings: Settings, config: Path | None = None) -> None:
    """Serve until Ctrl-C; ``config`` is the file ``settings`` came from (the run file names it)."""
    console = Console(stderr=True)
    model = local_model(settings, console)
    app = create_app(settings, on_ready=_announce(settings, console, model, config), local_model=model)
    server = uvicorn.Config(
        app,
        host=settings.server.host,
        port=settings.server.port,
        log_level="warning",
        log_config=None,  # uvicorn's records go to the handler ``logs.configure`` set (text or JSON)
        access_log=False,  # the node writes its own access lines, with request ids (``telemetry.py``)
        lifespan="on",
    )
    # uvicorn shuts down gracefully on Ctrl-C, then re-raises the signal: that is our exit.
    try:
        with contextlib.suppress(KeyboardInterrupt):
            uvicorn.Server(server).run()
    finally:
        runfile.stopped(settings.data_dir, os.getpid())
    console.print("node stopped")
