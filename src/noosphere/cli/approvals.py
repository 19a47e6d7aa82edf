"""``noosphere approvals list|show|approve|reject|escalate``: human checkpoints from the shell.

The CLI opens the node's store directly; a running node sees a decision made here within half a
second and lets the waiting call go ahead (or refuses it)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Column, Table

from noosphere.cli.common import (
    ConfigOpt,
    DataDirOpt,
    JsonOpt,
    TokenOpt,
    console,
    emit_json,
    node_as,
    record_command,
    run,
    settings_from,
)
from noosphere.governance.checkpoints import Scope, Status, Verdict
from noosphere.server.approvals_api import ApprovalOut
from noosphere.store.contract import ApprovalRecord

approvals_app = typer.Typer(
    callback=record_command, help="Human checkpoints: list and decide approvals.", no_args_is_help=True
)

NoteOpt = Annotated[str | None, typer.Option("--note", help="Why; kept with the decision.")]


def _as_dict(record: ApprovalRecord) -> dict[str, Any]:
    return ApprovalOut.of(record).model_dump(mode="json")


def _show(record: ApprovalRecord) -> None:
    console.print(f"[bold]{record.id}[/bold]  {record.status}")
    for key, value in vars(record).items():
        if key not in ("id", "status") and value is not None:
            console.print(f"  {key:14} {value}")


@approvals_app.command("list")
def approvals_list(
    status: Annotated[
        Status | None, typer.Option("--status", help="Only this status (default: pending).")
    ] = Status.PENDING,
    every: Annotated[bool, typer.Option("--all", help="Every status.")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 50,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List approvals, newest first (pending ones unless --status or --all)."""

    async def go() -> list[ApprovalRecord]:
        async with node_as(settings_from(config, data_dir), token, check_embedder=False) as (node, caller):
            wanted = None if every else status
            return await node.governor.run(
                caller,
                "approvals_list",
                {"status": wanted, "limit": limit},
                lambda: node.checkpoints.recent_for(caller, wanted, limit),
            )

    records = run(go)
    if as_json:
        emit_json([_as_dict(r) for r in records])
        return
    table = Table(Column("id", no_wrap=True), "status", "requester", "tool", "subject", "impact", "expires")
    for r in records:
        table.add_row(
            r.id,
            r.status,
            r.requester,
            r.tool,
            r.subject or "-",
            f"{r.impact:.2f}",
            r.expires_at.strftime("%Y-%m-%d %H:%M"),
        )
    console.print(table)


@approvals_app.command("show")
def approvals_show(
    approval_id: str,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one approval."""

    async def go() -> ApprovalRecord:
        async with node_as(settings_from(config, data_dir), token, check_embedder=False) as (node, caller):
            return await node.governor.run(
                caller,
                "approval_get",
                {"id": approval_id},
                lambda: node.checkpoints.get_for(caller, approval_id),
            )

    record = run(go)
    emit_json(_as_dict(record)) if as_json else _show(record)


def _decide(
    approval_id: str,
    verdict: Verdict,
    scope: Scope,
    note: str | None,
    where: tuple[ConfigOpt, DataDirOpt, TokenOpt],
    as_json: bool,
) -> None:
    config, data_dir, token = where

    async def go() -> ApprovalRecord:
        async with node_as(settings_from(config, data_dir), token, check_embedder=False) as (node, caller):
            return await node.governor.run(
                caller,
                "approval_decide",
                {"id": approval_id, "verdict": verdict, "scope": scope, "note": note},
                lambda: node.checkpoints.decide(approval_id, caller, verdict, scope, note),
            )

    record = run(go)
    if as_json:
        emit_json(_as_dict(record))
    else:
        scoped = f" ({record.scope})" if record.scope else ""
        console.print(f"{record.id} {record.status}{scoped}: {record.tool} {record.subject or ''}".rstrip())


@approvals_app.command("approve")
def approvals_approve(
    approval_id: str,
    scope: Annotated[
        Scope, typer.Option("--scope", help="once, session (this session of the agent) or always.")
    ] = Scope.ONCE,
    note: NoteOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve a pending call."""
    _decide(approval_id, Verdict.APPROVE, scope, note, (config, data_dir, token), as_json)


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
    _decide(approval_id, Verdict.REJECT, Scope.ONCE, note, (config, data_dir, token), as_json)


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
    _decide(approval_id, Verdict.ESCALATE, Scope.ONCE, note, (config, data_dir, token), as_json)
