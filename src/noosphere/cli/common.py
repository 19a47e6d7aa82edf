"""For the few commands that open the data directory themselves (offline administration and
reads that verify the store from outside: export, import, re-embed, audit verify): opening the
node as a principal, with the config the node runs with. Imported inside those commands only:
it brings the whole node."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import anyio
import typer

from noosphere.auth.names import ADMIN_TOKEN_FILE, SECRET_ENV
from noosphere.auth.permissions import authorize
from noosphere.auth.principal import Principal
from noosphere.cli.options import command_name, where
from noosphere.cli.output import console
from noosphere.config import Settings, load_settings
from noosphere.errors import NoosphereError, Unauthenticated
from noosphere.node import Node, open_node

T = TypeVar("T")


def settings_from(config: Path | None, data_dir: Path | None) -> Settings:
    """The settings of the node on ``data_dir``: from ``config``, else the config it last ran
    with (``target.py``), so the store opened is the one the node uses."""
    target = where(config, data_dir)
    return load_settings(target.config, data_dir=target.data_dir)


def run(fn: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine; turn noosphere errors into a one-line message and exit code 1."""
    try:
        return anyio.run(fn)
    except NoosphereError as exc:
        console.print(f"[red]error[/red] ({exc.code}): {exc.message}", highlight=False, soft_wrap=True)
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


__all__ = ["admin_token", "node_as", "opened_node", "run", "settings_from"]
