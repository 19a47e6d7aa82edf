"""``noosphere agent …`` and ``noosphere user …``, through the node's API."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from noosphere.cli.client import fail, segment
from noosphere.cli.options import (
    ConfigOpt,
    DataDirOpt,
    JsonOpt,
    TokenOpt,
    ZoneName,
    call,
    record_command,
)
from noosphere.cli.output import console, emit_json, table

agent_app = typer.Typer(callback=record_command, help="Manage agents.", no_args_is_help=True)
user_app = typer.Typer(callback=record_command, help="Manage users.", no_args_is_help=True)

LevelName = Literal["L0", "L1", "L2", "L3"]


@agent_app.command("create")
def agent_create(
    name: str,
    level: Annotated[
        LevelName,
        typer.Option("--level", help="L0 system, L1 orchestrator, L2 specialist, L3 assistant."),
    ] = "L2",
    capability: Annotated[list[str] | None, typer.Option("--capability", help="Repeat for several.")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Model it thinks with.")] = None,
    soul: Annotated[str | None, typer.Option("--soul", help="System prompt.")] = None,
    soul_file: Annotated[Path | None, typer.Option("--soul-file", help="System prompt from a file.")] = None,
    tool: Annotated[list[str] | None, typer.Option("--tool", help="Allowed tool (glob); repeat.")] = None,
    zone: Annotated[list[ZoneName] | None, typer.Option("--zone", help="Memory zone; repeat.")] = None,
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
    fields: dict[str, Any] = {"name": name, "level": level, "serve": serve, "model": model, "owner": owner}
    if soul_file is not None:
        try:
            fields["soul"] = soul_file.read_text(encoding="utf-8")
        except OSError as exc:
            fail("invalid_request", f"cannot read {soul_file}: {exc.strerror}")
    elif soul is not None:
        fields["soul"] = soul
    optional = {"capabilities": capability, "tools": tool, "zones": zone, "max_steps": max_steps}
    optional["approvers"] = approver
    fields.update({k: v for k, v in {**optional, "max_tokens": max_tokens}.items() if v})
    created = call(config, data_dir, token, "POST", "/api/v1/agents", fields)
    if as_json:
        emit_json(created)
    else:
        console.print(f"created {created['id']} ({level}); its token (shown once):")
        print(created["token"])


@agent_app.command("show")
def agent_show(
    name: str,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show an agent's profile."""
    profile = call(config, data_dir, token, "GET", f"/api/v1/agents/{segment(name)}")
    if as_json:
        emit_json(profile)
        return
    for key, value in profile.items():
        console.print(f"{key:13} {value}", highlight=False)


@agent_app.command("list")
def agent_list(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List agents with their level, capabilities and model."""
    profiles = call(config, data_dir, token, "GET", "/api/v1/agents")
    if as_json:
        emit_json(profiles)
        return
    shown = table("name", "level", "capabilities", "model", "serve")
    for p in profiles:
        capabilities = ", ".join(p["capabilities"]) or "-"
        shown.add_row(
            p["name"], p["level"], capabilities, p["model"] or "(default)", "yes" if p["serve"] else ""
        )
    console.print(shown)


@agent_app.command("delete")
def agent_delete(
    name: str, config: ConfigOpt = None, data_dir: DataDirOpt = None, token: TokenOpt = None
) -> None:
    """Delete an agent with everything it owned: profile, token, memories, grants, mailbox."""
    call(config, data_dir, token, "DELETE", f"/api/v1/agents/{segment(name)}")
    console.print(f"deleted agent {name}")


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
    body = {"name": name, "conversations": conversations}
    created = call(config, data_dir, token, "POST", "/api/v1/users", body)
    if as_json:
        emit_json({**created, "conversations": conversations})
    else:
        console.print(f"created {created['id']}; its token (shown once):")
        print(created["token"])


@user_app.command("list")
def user_list(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List users."""
    records = call(config, data_dir, token, "GET", "/api/v1/users")
    if as_json:
        emit_json(records)
        return
    shown = table("name", "level", "created")
    for r in records:
        shown.add_row(r["name"], r["level"] or "-", r["created_at"][:16].replace("T", " "))
    console.print(shown)


@user_app.command("delete")
def user_delete(
    name: str, config: ConfigOpt = None, data_dir: DataDirOpt = None, token: TokenOpt = None
) -> None:
    """Delete a user with everything they owned: token, API keys, memories, mailbox."""
    call(config, data_dir, token, "DELETE", f"/api/v1/users/{segment(name)}")
    console.print(f"deleted user {name}")


def _rotate(
    kind: str, name: str, config: ConfigOpt, data_dir: DataDirOpt, token: TokenOpt, as_json: bool
) -> None:
    issued = call(config, data_dir, token, "POST", f"/api/v1/{kind}s/{segment(name)}/token")
    if as_json:
        emit_json(issued)
    else:
        console.print(f"new token for {kind} {name} (the old one no longer works):")
        print(issued["token"])


@user_app.command("reset-secret")
def user_reset_secret(
    name: str, config: ConfigOpt = None, data_dir: DataDirOpt = None, token: TokenOpt = None
) -> None:
    """Let a user who lost their conversation secret choose a new one. What was sealed under the
    old one stays sealed for good (nobody can open it); `memory forget --owner` erases it."""
    if call(config, data_dir, token, "POST", f"/api/v1/users/{segment(name)}/reset-secret")["reset"]:
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
    _rotate("agent", name, config, data_dir, token, as_json)


@user_app.command("token")
def user_token(
    name: str,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Issue a new token for a user."""
    _rotate("user", name, config, data_dir, token, as_json)
