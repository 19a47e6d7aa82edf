"""``noosphere approvals list|show|approve|reject|escalate``: human checkpoints from the shell,
through the node's API (a waiting agent goes on as soon as a decision is made)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import typer

from noosphere.cli.client import segment
from noosphere.cli.options import ConfigOpt, DataDirOpt, JsonOpt, TokenOpt, call, record_command
from noosphere.cli.output import console, emit_json, table

approvals_app = typer.Typer(
    callback=record_command, help="Human checkpoints: list and decide approvals.", no_args_is_help=True
)

NoteOpt = Annotated[str | None, typer.Option("--note", help="Why; kept with the decision.")]
StatusName = Literal["pending", "approved", "rejected", "timeout", "escalated"]
ScopeName = Literal["once", "session", "always"]


def _show(record: dict[str, Any]) -> None:
    console.print(f"[bold]{record['id']}[/bold]  {record['status']}")
    for key, value in record.items():
        if key not in ("id", "status") and value is not None:
            console.print(f"  {key:14} {value}", highlight=False)


@approvals_app.command("list")
def approvals_list(
    status: Annotated[
        StatusName | None, typer.Option("--status", help="Only this status (default: pending).")
    ] = "pending",
    every: Annotated[bool, typer.Option("--all", help="Every status.")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 50,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List approvals, newest first (pending ones unless --status or --all)."""
    params = {"status": None if every else status, "limit": limit}
    records = call(config, data_dir, token, "GET", "/api/v1/approvals", params=params)
    if as_json:
        emit_json(records)
        return
    shown = table("id", "status", "requester", "tool", "subject", "impact", "expires")
    for r in records:
        shown.add_row(
            r["id"],
            r["status"],
            r["requester"],
            r["tool"],
            r["subject"] or "-",
            f"{r['impact']:.2f}",
            r["expires_at"][:16].replace("T", " "),
        )
    console.print(shown)


@approvals_app.command("show")
def approvals_show(
    approval_id: str,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one approval."""
    record = call(config, data_dir, token, "GET", f"/api/v1/approvals/{segment(approval_id)}")
    emit_json(record) if as_json else _show(record)


def _decide(
    approval_id: str,
    verdict: str,
    scope: str,
    note: str | None,
    where: tuple[ConfigOpt, DataDirOpt, TokenOpt],
    as_json: bool,
) -> None:
    config, data_dir, token = where
    path = f"/api/v1/approvals/{segment(approval_id)}/{verdict}"
    record = call(config, data_dir, token, "POST", path, {"scope": scope, "note": note})
    if as_json:
        emit_json(record)
    else:
        scoped = f" ({record['scope']})" if record["scope"] else ""
        what = f"{record['tool']} {record['subject'] or ''}".rstrip()
        console.print(f"{record['id']} {record['status']}{scoped}: {what}", highlight=False)


@approvals_app.command("approve")
def approvals_approve(
    approval_id: str,
    scope: Annotated[
        ScopeName, typer.Option("--scope", help="once, session (this session of the agent) or always.")
    ] = "once",
    note: NoteOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve a pending call."""
    _decide(approval_id, "approve", scope, note, (config, data_dir, token), as_json)


@approvals_app.command("reject")
def approvals_reject(
    approval_id: str,
    note: NoteOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Reject a pending call: it is refused."""
    _decide(approval_id, "reject", "once", note, (config, data_dir, token), as_json)


@approvals_app.command("escalate")
def approvals_escalate(
    approval_id: str,
    note: NoteOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Pass a pending call to the admin."""
    _decide(approval_id, "escalate", "once", note, (config, data_dir, token), as_json)
