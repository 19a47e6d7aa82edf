"""``noosphere agent …`` and ``noosphere user …``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from noosphere.auth.principal import Level, PrincipalKind
from noosphere.cli.common import (
    ConfigOpt,
    DataDirOpt,
    JsonOpt,
    TokenOpt,
    admin_node,
    console,
    emit_json,
    run,
)

agent_app = typer.Typer(help="Manage agents.", no_args_is_help=True)
user_app = typer.Typer(help="Manage users.", no_args_is_help=True)


def _create(
    kind: PrincipalKind,
    name: str,
    level: Level | None,
    config: ConfigOpt,
    data_dir: DataDirOpt,
    token: TokenOpt,
    as_json: bool,
) -> None:
    async def go() -> None:
        async with admin_node(config, data_dir, token, "managing agents and users") as node:
            principal, secret = await node.auth.create(kind, name, level)
        if as_json:
            emit_json(
                {
                    "id": principal.id,
                    "name": name,
                    "kind": kind.value,
                    "level": None if level is None else level.value,
                    "token": secret,
                }
            )
        else:
            console.print(f"created {principal.id}; its token (shown once):")
            print(secret)

    run(go)


def _list(
    kind: PrincipalKind, config: ConfigOpt, data_dir: DataDirOpt, token: TokenOpt, as_json: bool
) -> None:
    async def go() -> None:
        async with admin_node(config, data_dir, token, "managing agents and users") as node:
            records = await node.auth.list_principals(kind)
        if as_json:
            emit_json(
                [
                    {
                        "id": r.id,
                        "name": r.name,
                        "level": r.level,
                        "created_at": r.created_at.isoformat(),
                    }
                    for r in records
                ]
            )
            return
        table = Table("name", "level", "created")
        for r in records:
            table.add_row(r.name, r.level or "-", r.created_at.strftime("%Y-%m-%d %H:%M"))
        console.print(table)

    run(go)


def _delete(kind: PrincipalKind, name: str, config: ConfigOpt, data_dir: DataDirOpt, token: TokenOpt) -> None:
    async def go() -> None:
        async with admin_node(config, data_dir, token, "managing agents and users") as node:
            await node.auth.delete(kind, name)
        console.print(f"deleted {kind.value} {name}")

    run(go)


@agent_app.command("create")
def agent_create(
    name: str,
    level: Annotated[
        Level,
        typer.Option("--level", help="L0 system, L1 orchestrator, L2 specialist, L3 assistant."),
    ] = Level.L2,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an agent and print its token (once)."""
    _create(PrincipalKind.AGENT, name, level, config, data_dir, token, as_json)


@agent_app.command("list")
def agent_list(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List agents."""
    _list(PrincipalKind.AGENT, config, data_dir, token, as_json)


@agent_app.command("delete")
def agent_delete(
    name: str, config: ConfigOpt = None, data_dir: DataDirOpt = None, token: TokenOpt = None
) -> None:
    """Delete an agent (its token stops working; its memories stay until forgotten)."""
    _delete(PrincipalKind.AGENT, name, config, data_dir, token)


@user_app.command("create")
def user_create(
    name: str,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a user and print their token (once)."""
    _create(PrincipalKind.USER, name, None, config, data_dir, token, as_json)


@user_app.command("list")
def user_list(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List users."""
    _list(PrincipalKind.USER, config, data_dir, token, as_json)


@user_app.command("delete")
def user_delete(
    name: str, config: ConfigOpt = None, data_dir: DataDirOpt = None, token: TokenOpt = None
) -> None:
    """Delete a user (their token stops working)."""
    _delete(PrincipalKind.USER, name, config, data_dir, token)


def _rotate(
    kind: PrincipalKind, name: str, config: ConfigOpt, data_dir: DataDirOpt, token: TokenOpt, as_json: bool
) -> None:
    async def go() -> None:
        async with admin_node(config, data_dir, token, "managing agents and users") as node:
            secret = await node.auth.rotate(kind, name)
        if as_json:
            emit_json({"id": f"{kind.value}:{name}", "token": secret})
        else:
            console.print(
                f"new token for {kind.value} {name} (the old one no longer works; "
                "conversations sealed under it can no longer be opened):"
            )
            print(secret)

    run(go)


@agent_app.command("token")
def agent_token(
    name: str,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Issue a new token for an agent (e.g. one declared in the config file)."""
    _rotate(PrincipalKind.AGENT, name, config, data_dir, token, as_json)


@user_app.command("token")
def user_token(
    name: str,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Issue a new token for a user."""
    _rotate(PrincipalKind.USER, name, config, data_dir, token, as_json)
