"""What every CLI command shares and may import at once: the options that name the node and the
caller, the command's name for the authorization table, and the node to call (``target.py``,
``client.py``). Nothing here imports the node's machinery: ``noosphere --help`` and a command
against a running node stay fast."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from noosphere.cli.client import Api, api, fail
from noosphere.cli.target import Target, locate
from noosphere.errors import NoosphereError

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
    str | None,
    typer.Option("--url", help="The node's URL (default: the node running on the data directory)."),
]


class ZoneName(StrEnum):  # as ``memory.model.Zone`` (a test keeps them equal), without pydantic
    PRIVATE = "private"
    SHARED = "shared"
    FEDERATED = "federated"


def where(config: Path | None, data_dir: Path | None, url: str | None = None) -> Target:
    """The node the command acts on; a config error is printed (exit 1)."""
    try:
        return locate(config, data_dir, url)
    except NoosphereError as exc:
        fail(exc.code, exc.message)


@contextmanager
def node_api(
    config: Path | None, data_dir: Path | None, token: str | None, url: str | None = None
) -> Iterator[Api]:
    """The node's API: the running node's over HTTP, else its routes served here offline."""
    with api(where(config, data_dir, url), token) as caller:
        yield caller


def call(
    config: Path | None,
    data_dir: Path | None,
    token: str | None,
    method: str,
    path: str,
    body: Any = None,
    params: Any = None,
    timeout: float = 60,
) -> Any:
    """One call to the node's API (most commands make one)."""
    with node_api(config, data_dir, token) as node:
        return node.call(method, path, body, params, timeout)


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


def running(config: Path | None, data_dir: Path | None, url: str | None) -> Target:
    """The node for a command only a running node can answer (its pool, its agents' runs)."""
    target = where(config, data_dir, url)
    if target.url is None:
        fail(
            "unavailable",
            f"no node is running on {target.data_dir}: start one with `noosphere up`, or pass --url",
        )
    return target


def refuse_while_running(target: Target, what: str) -> None:
    """For offline administration that rewrites the store wholesale: not beside a running node."""
    if target.url is not None:
        fail(
            "node_running",
            f"{what} works on a stopped node, and a node is running on {target.data_dir} "
            f"({target.url}); stop it first",
        )


__all__ = [
    "ConfigOpt",
    "DataDirOpt",
    "JsonOpt",
    "TokenOpt",
    "UrlOpt",
    "ZoneName",
    "call",
    "command_name",
    "node_api",
    "record_command",
    "refuse_while_running",
    "running",
    "where",
]
