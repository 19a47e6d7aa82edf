"""``noosphere worker``: join a node's pool with a local model or as a proxy, and
``noosphere worker-token``: issue a worker credential."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from noosphere.cli.client import segment
from noosphere.cli.options import ConfigOpt, DataDirOpt, JsonOpt, TokenOpt, call
from noosphere.cli.output import console, emit_json

if TYPE_CHECKING:
    from noosphere.pool.worker import RemoteWorker


def worker(
    join: Annotated[
        list[str],
        typer.Option(
            "--join",
            help="The node, e.g. ws://127.0.0.1:3099. Repeat it for the processes of a cluster: the "
            "worker joins the first that answers and moves to the next when that one goes away.",
        ),
    ],
    token: Annotated[str, typer.Option("--token", envvar="NOOSPHERE_WORKER_TOKEN", help="Worker token.")],
    name: Annotated[str | None, typer.Option(help="Worker name (default: host name).")] = None,
    capacity: Annotated[int, typer.Option(min=1, help="Jobs at once.")] = 1,
    model: Annotated[Path | None, typer.Option(help="GGUF file (default: SmolLM2-135M-Instruct).")] = None,
    model_name: Annotated[
        str, typer.Option(help="Name the local model is served as.")
    ] = "smollm2-135m-instruct",
    context: Annotated[int, typer.Option(help="Context length of the local model.")] = 2048,
    threads: Annotated[int, typer.Option(help="CPU threads (0: all).")] = 0,
    proxy: Annotated[
        str | None, typer.Option(help="Proxy to this OpenAI-compatible base URL instead.")
    ] = None,
    proxy_model: Annotated[
        list[str] | None, typer.Option(help="Model served through the proxy (repeatable).")
    ] = None,
    proxy_key: Annotated[
        str | None, typer.Option(envvar="NOOSPHERE_PROXY_KEY", help="API key for the proxy.")
    ] = None,
    parent_pid: Annotated[
        int | None, typer.Option(hidden=True, help="Stop when this process (the node) is gone.")
    ] = None,
) -> None:
    """Join a node's pool and serve a model: local llama.cpp (default) or a proxy."""
    import anyio

    from noosphere import logs
    from noosphere.pool.backends.base import Backend, BackendError
    from noosphere.pool.protocol import ModelOffer
    from noosphere.pool.worker import RemoteWorker, WorkerRejected

    logs.configure("text")  # a worker logs its connection's ups and downs
    backend: Backend
    try:
        if proxy:
            if not proxy_model:
                console.print("[red]error[/red]: --proxy needs at least one --proxy-model")
                raise typer.Exit(2)
            from noosphere.pool.backends.openai_compat import OpenAICompatibleBackend

            offers = [ModelOffer(name=m, context_length=context) for m in proxy_model]
            backend = OpenAICompatibleBackend(proxy, offers, proxy_key)
        else:
            from noosphere.pool.backends.llama import LlamaBackend, bundled_smollm2

            backend = LlamaBackend(model or bundled_smollm2(), model_name, context, threads)
    except BackendError as exc:
        console.print(f"[red]error[/red] ({exc.code}): {exc.message}")
        raise typer.Exit(1) from None
    remote = RemoteWorker(join, token, backend, name or socket.gethostname(), capacity)
    served = ", ".join(o.name for o in backend.offers())
    console.print(f"worker {remote.name} serving {served}; joining {remote.url} (Ctrl-C to leave)")
    try:
        anyio.run(_serve, remote, parent_pid)
    except WorkerRejected as exc:
        console.print(f"[red]the node refused this worker[/red]: {exc}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        console.print("worker stopped")


async def _serve(remote: RemoteWorker, parent: int | None) -> None:
    """Serve until the node rejects the worker, or (``parent`` set) the parent process is gone:
    a node killed outright leaves no worker behind, reconnecting forever."""
    import anyio

    async with anyio.create_task_group() as group:
        if parent is not None:
            group.start_soon(_exit_with, parent, group.cancel_scope)
        await remote.run()
        group.cancel_scope.cancel()


async def _exit_with(parent: int, scope: Any) -> None:
    import anyio

    while True:  # the kernel sends no event when a parent dies; poll for it
        if os.getppid() != parent:
            scope.cancel()
            return
        await anyio.sleep(1.0)


def worker_token(
    name: str,
    model: Annotated[
        list[str] | None,
        typer.Option("--model", help="A model name the worker may serve; repeat (default: any)."),
    ] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Issue a token for a worker named NAME (creating it, or replacing its old token)."""
    issued = call(
        config, data_dir, token, "POST", f"/api/v1/workers/{segment(name)}/token", {"models": model}
    )
    if as_json:
        emit_json(issued)
    else:
        console.print(f"token for worker {name} (shown once):")
        print(issued["token"])
