"""What every CLI command shares: options that locate the node, opening it, printing, errors."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import anyio
import httpx
import typer
from rich.console import Console

from noosphere.auth.conversation_key import SECRET_ENV
from noosphere.auth.permissions import authorize
from noosphere.auth.principal import Principal
from noosphere.auth.tokens import ADMIN_TOKEN_FILE
from noosphere.config import Settings, load_settings
from noosphere.errors import NoosphereError, Unauthenticated
from noosphere.node import Node, open_node

T = TypeVar("T")
console = Console(stderr=True)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML config file.", envvar="NOOSPHERE_CONFIG")
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data directory (default ./.noosphere).", envvar="NOOSPHERE_DATA_DIR"),
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        help="Act as the principal of this token (default: the admin).",
        envvar="NOOSPHERE_TOKEN",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
UrlOpt = Annotated[
    str | None, typer.Option("--url", help="The node (default: from the config, http://127.0.0.1:3099).")
]


def remote(settings: Settings, url: str | None, token: str | None) -> tuple[str, dict[str, str]]:
    """The base URL of the running node and the headers to call it with (for commands that need
    the node process itself: its pool, its agent runtime)."""
    base = url or f"http://{settings.server.host}:{settings.server.port}"
    return base, {"Authorization": f"Bearer {token or admin_token(settings)}"}


def fail(error: dict[str, Any]) -> NoReturn:
    """Print a node's JSON error (``{"code", "message"}``) and exit 1."""
    console.print(f"[red]error[/red] ({error.get('code')}): {error.get('message')}")
    raise typer.Exit(1)


def unreachable(base: str, exc: Exception) -> NoReturn:
    console.print(f"[red]error[/red]: no node answering at {base} ({exc})")
    raise typer.Exit(1)


def ask_node(
    settings: Settings, url: str | None, token: str | None, method: str, path: str, timeout: float
) -> Any:
    """Call the running node's REST API; its JSON answer, or the node's error printed (exit 1)."""
    base, headers = remote(settings, url, token)
    try:
        response = httpx.request(method, f"{base}{path}", headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        unreachable(base, exc)
    if response.status_code != 200:
        fail(response.json().get("error", {}))
    return response.json()


def settings_from(config: Path | None, data_dir: Path | None, **overrides: Any) -> Settings:
    return load_settings(config, data_dir=data_dir, **overrides)


def run(fn: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine; turn noosphere errors into a one-line message and exit code 1."""
    try:
        return anyio.run(fn)
    except NoosphereError as exc:
        console.print(f"[red]error[/red] ({exc.code}): {exc.message}")
        raise typer.Exit(1) from None


@asynccontextmanager
async def node_as(
    settings: Settings, token: str | None, check_embedder: bool = True
) -> AsyncIterator[tuple[Node, Principal]]:
    """Open the node's store directly and authenticate as ``token`` (default: the admin), if the
    authorization table lets that principal run the current command."""
    async with open_node(settings, check_embedder=check_embedder) as node:
        if node.new_admin_token:
            console.print(f"created admin token (saved in {settings.data_dir / ADMIN_TOKEN_FILE})")
        # The conversation secret only ever comes from the environment: a command line is visible
        # to every user of the machine (ps).
        caller = await node.authenticate(token or admin_token(settings), os.environ.get(SECRET_ENV) or None)
        authorize("cli", command_name(), caller)
        yield node, caller


_COMMAND: ContextVar[str] = ContextVar("noosphere_command", default="noosphere")


def record_command(ctx: typer.Context) -> None:
    """Callback of every command group: remembers which command runs (``noosphere memory add``),
    the name the authorization table knows it by."""
    names = [ctx.invoked_subcommand or ""]
    level: Any = ctx  # parents are typer's click contexts
    while level.parent is not None:  # the root's own name is whatever started the program
        names.append(level.info_name or "")
        level = level.parent
    _COMMAND.set(" ".join(["noosphere", *reversed(names)]).strip())


def command_name() -> str:
    return _COMMAND.get()


@asynccontextmanager
async def opened_node(
    config: Path | None, data_dir: Path | None, token: str | None, check_embedder: bool = True
) -> AsyncIterator[Node]:
    """The node, opened as ``token`` (default: the admin) for a command that needs no caller."""
    async with node_as(settings_from(config, data_dir), token, check_embedder) as (node, _):
        yield node


def admin_token(settings: Settings) -> str:
    token = settings.auth.admin_token or os.environ.get("NOOSPHERE_ADMIN_TOKEN")
    if token:
        return token
    path = settings.data_dir / ADMIN_TOKEN_FILE
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        raise Unauthenticated(f"no --token given and no admin token at {path}") from None


def emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, default=str) + "\n")
