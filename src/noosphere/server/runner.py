"""``noosphere up``: serve the app with uvicorn and say where everything is."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import uvicorn
from rich.console import Console

from noosphere.auth.tokens import ADMIN_TOKEN_FILE
from noosphere.config import Settings
from noosphere.node import Node
from noosphere.pool.backends.base import Backend, BackendError
from noosphere.pool.backends.llama import LlamaBackend, bundled_smollm2
from noosphere.server.app import create_app


def _announce(
    settings: Settings, console: Console, backends: list[tuple[str, Backend]]
) -> Callable[[Node], None]:
    def ready(node: Node) -> None:
        host = settings.server.host
        shown = f"[{host}]" if ":" in host else host
        base = f"http://{shown}:{settings.server.port}"
        console.print(
            f"[bold]noosphere[/bold] node [cyan]{settings.node_id}[/cyan] is up "
            f"({settings.storage.backend}, data in {settings.data_dir})"
        )
        console.print(f"  OpenAI API {base}/v1   (chat/completions, models, embeddings)")
        console.print(f"  REST API   {base}/api/v1/memories")
        console.print(f"  MCP        {base}/mcp   (Streamable HTTP, bearer token)")
        console.print(f"  API docs   {base}/docs")
        console.print(f"  workers    {base.replace('http', 'ws', 1)}/ws/worker")
        for name, _ in backends:
            console.print(f"  local model [cyan]{name}[/cyan] (llama.cpp)")
        if node.new_admin_token:
            console.print(
                "  admin token (shown once; also saved to "
                f"{settings.data_dir / ADMIN_TOKEN_FILE}, mode 0600):"
            )
            console.print(f"    {node.new_admin_token}", highlight=False)
        console.print("  Ctrl-C to stop")

    return ready


def local_backends(settings: Settings, console: Console) -> list[tuple[str, Backend]]:
    """The local llama.cpp worker ``up`` attaches, unless disabled or impossible (then say why)."""
    pool = settings.pool
    if not pool.local_worker:
        return []
    try:
        path = pool.local_model_path or bundled_smollm2()
        backend = LlamaBackend(path, pool.local_model_name, pool.local_context_length, pool.local_threads)
    except BackendError as exc:
        console.print(f"[yellow]no local worker[/yellow]: {exc.message}")
        return []
    return [(pool.local_model_name, backend)]


def serve(settings: Settings) -> None:
    console = Console(stderr=True)
    backends = local_backends(settings, console)
    app = create_app(settings, on_ready=_announce(settings, console, backends), backends=backends)
    config = uvicorn.Config(
        app,
        host=settings.server.host,
        port=settings.server.port,
        log_level="warning",
        lifespan="on",
    )
    # uvicorn shuts down gracefully on Ctrl-C, then re-raises the signal: that is our exit.
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run()
    console.print("node stopped")
