"""``noosphere agent …`` and ``noosphere user …``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.table import Table

from noosphere.agents.profile import AgentProfile
from noosphere.auth.principal import ADMIN_ID, Level, PrincipalKind, principal_id
from noosphere.cli.common import (
    ConfigOpt,
    DataDirOpt,
    JsonOpt,
    TokenOpt,
    console,
    emit_json,
    opened_node,
    record_command,
    run,
)
from noosphere.errors import InvalidRequest
from noosphere.memory.model import Zone

agent_app = typer.Typer(callback=record_command, help="Manage agents.", no_args_is_help=True)
user_app = typer.Typer(callback=record_command, help="Manage users.", no_args_is_help=True)


@agent_app.command("create")
def agent_create(
    name: str,
    level: Annotated[
        Level,
        typer.Option("--level", help="L0 system, L1 orchestrator, L2 specialist, L3 assistant."),
    ] = Level.L2,
    capability: Annotated[list[str] | None, typer.Option("--capability", help="Repeat for several.")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Model it thinks with.")] = None,
    soul: Annotated[str | None, typer.Option("--soul", help="System prompt.")] = None,
    soul_file: Annotated[Path | None, typer.Option("--soul-file", help="System prompt from a file.")] = None,
    tool: Annotated[list[str] | None, typer.Option("--tool", help="Allowed tool (glob); repeat.")] = None,
    zone: Annotated[list[Zone] | None, typer.Option("--zone", help="Memory zone; repeat.")] = None,
    serve: Annotated[bool, typer.Option("--serve", help="The node runs it (takes delegated tasks).")] = False,
    owner: Annotated[
        str | None, typer.Option("--owner", help="User who may run it and decide its approvals.")
    ] = None,
    approver: Annotated[
        list[str] | None, typer.Option("--approver", help="User who may decide its approvals; repeat.")
    ] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", min=1)] = None,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens", min=64)] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an agent with its profile and print its token (once)."""

    async def go() -> None:
        fields: dict[str, Any] = {
            "name": name,
            "level": level,
            "serve": serve,
            "model": model,
            "owner": owner,
        }
        if soul_file is not None:
            try:
                fields["soul"] = soul_file.read_text(encoding="utf-8")
            except OSError as exc:
                raise InvalidRequest(f"cannot read {soul_file}: {exc.strerror}") from None
        elif soul is not None:
            fields["soul"] = soul
        optional = {"capabilities": capability, "tools": tool, "zones": zone, "max_steps": max_steps}
        optional["approvers"] = approver
        fields.update({k: v for k, v in {**optional, "max_tokens": max_tokens}.items() if v})
        try:
            profile = AgentProfile.model_validate(fields)
        except ValidationError as exc:
            raise InvalidRequest(str(exc.errors()[0]["msg"])) from None
        async with opened_node(config, data_dir, token, check_embedder=False) as node:
            _, secret = await node.agents.create(profile)
        if as_json:
            emit_json(
                {
                    "id": principal_id(PrincipalKind.AGENT, name),
                    **profile.model_dump(mode="json"),
                    "token": secret,
                }
            )
        else:
            console.print(
                f"created {principal_id(PrincipalKind.AGENT, name)} ({level}); its token (shown once):"
            )
            print(secret)

    run(go)


@agent_app.command("show")
def agent_show(
    name: str,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show an agent's profile."""

    async def go() -> AgentProfile:
        async with opened_node(config, data_dir, token, check_embedder=False) as node:
            return await node.agents.get(name)

    profile = run(go)
    if as_json:
        emit_json(profile.model_dump(mode="json"))
        return
    for key, value in profile.model_dump(mode="json").items():
        console.print(f"{key:13} {value}")


@agent_app.command("list")
def agent_list(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List agents with their level, capabilities and model."""

    async def go() -> list[AgentProfile]:
        async with opened_node(config, data_dir, token, check_embedder=False) as node:
            return await node.agents.every()

    profiles = run(go)
    if as_json:
        emit_json([p.model_dump(mode="json") for p in profiles])
        return
    table = Table("name", "level", "capabilities", "model", "serve")
    for p in profiles:
        table.add_row(
            p.name,
            p.level,
            ", ".join(p.capabilities) or "-",
            p.model or "(default)",
            "yes" if p.serve else "",
        )
    console.print(table)


@agent_app.command("delete")
def agent_delete(
    name: str, config: ConfigOpt = None, data_dir: DataDirOpt = None, token: TokenOpt = None
) -> None:
    """Delete an agent with everything it owned: profile, token, memories, grants, mailbox."""

    async def go() -> None:
        async with opened_node(config, data_dir, token, check_embedder=False) as node:
            await node.remove(PrincipalKind.AGENT, name)
        console.print(f"deleted agent {name}")

    run(go)


@user_app.command("create")
def user_create(
    name: str,
    conversations: Annotated[
        bool,
        typer.Option("--conversations", help="Keep their chat exchanges as conversation memories."),
    ] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a user and print their token (once)."""

    async def go() -> None:
        async with opened_node(config, data_dir, token) as node:
            principal, secret = await node.auth.create(PrincipalKind.USER, name)
            if conversations:
                await node.auth.set_capture(name, True)
        if as_json:
            emit_json(
                {
                    "id": principal.id,
                    "name": name,
                    "kind": "user",
                    "level": None,
                    "conversations": conversations,
                    "token": secret,
                }
            )
        else:
            console.print(f"created {principal.id}; its token (shown once):")
            print(secret)

    run(go)


@user_app.command("list")
def user_list(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List users."""

    async def go() -> None:
        async with opened_node(config, data_dir, token) as node:
            records = await node.auth.list_principals(PrincipalKind.USER)
        if as_json:
            emit_json(
                [
                    {"id": r.id, "name": r.name, "level": r.level, "created_at": r.created_at.isoformat()}
                    for r in records
                ]
            )
            return
        table = Table("name", "level", "created")
        for r in records:
            table.add_row(r.name, r.level or "-", r.created_at.strftime("%Y-%m-%d %H:%M"))
        console.print(table)

    run(go)


@user_app.command("delete")
def user_delete(
    name: str, config: ConfigOpt = None, data_dir: DataDirOpt = None, token: TokenOpt = None
) -> None:
    """Delete a user with everything they owned: token, API keys, memories, mailbox."""

    async def go() -> None:
        async with opened_node(config, data_dir, token) as node:
            await node.remove(PrincipalKind.USER, name)
        console.print(f"deleted user {name}")

    run(go)


def _rotate(
    kind: PrincipalKind, name: str, config: ConfigOpt, data_dir: DataDirOpt, token: TokenOpt, as_json: bool
) -> None:
    async def go() -> None:
        async with opened_node(config, data_dir, token) as node:
            secret = await node.auth.rotate(kind, name)
        if as_json:
            emit_json({"id": f"{kind.value}:{name}", "token": secret})
        else:
            console.print(f"new token for {kind.value} {name} (the old one no longer works):")
            print(secret)

    run(go)


@user_app.command("reset-secret")
def user_reset_secret(
    name: str, config: ConfigOpt = None, data_dir: DataDirOpt = None, token: TokenOpt = None
) -> None:
    """Let a user who lost their conversation secret choose a new one. What was sealed under the
    old one stays sealed for good (nobody can open it); `memory forget --owner` erases it."""

    async def go() -> bool:
        async with opened_node(config, data_dir, token) as node:
            reset = await node.keys.reset(principal_id(PrincipalKind.USER, name))
            if reset:
                await node.audit.append(ADMIN_ID, "principal", {"event": "secret_reset", "principal": name})
            return reset

    if run(go):
        console.print(f"{name}'s next conversation secret becomes theirs; older conversations stay sealed")
    else:
        console.print(f"{name} has no conversation secret yet")


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
