"""``noosphere audit show|verify|heads|public-key``: read and check the node's signed audit log.
``show`` asks the node's API; ``verify`` and ``heads`` read the store and the head file
themselves (a check from outside the node), with the config the node runs with."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from noosphere.cli.options import ConfigOpt, DataDirOpt, JsonOpt, TokenOpt, call, record_command
from noosphere.cli.output import console, emit_json, table

if TYPE_CHECKING:
    from noosphere.governance.audit import Verification
    from noosphere.store.contract import Witnessed

audit_app = typer.Typer(
    callback=record_command, help="The signed, append-only audit log.", no_args_is_help=True
)


@audit_app.command("show")
def show(
    start: Annotated[int, typer.Option("--from", help="First entry (seq) to show.")] = 0,
    limit: Annotated[int, typer.Option(help="Entries to show.")] = 50,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List audit entries, oldest first."""
    rows = call(config, data_dir, token, "GET", "/api/v1/audit", params={"start": start, "limit": limit})
    if as_json:
        emit_json(rows)
        return
    shown = table("seq", "at", "actor", "kind", "body")
    for row in rows:
        body = json.dumps(row["body"], ensure_ascii=False)
        shown.add_row(str(row["seq"]), row["at"], row["actor"], row["kind"], body[:100])
    console.print(shown)


@audit_app.command("verify")
def verify(
    public_key: Annotated[
        str | None, typer.Option(help="The node's public key (base64); default: this node's own.")
    ] = None,
    sample: Annotated[int, typer.Option(help="Inclusion proofs to check, spread over the log.")] = 256,
    trusted_head: Annotated[
        list[str] | None,
        typer.Option("--trusted-head", help="SIZE:ROOT of a head you kept (from `audit heads`); repeat."),
    ] = None,
    peers: Annotated[
        bool, typer.Option("--peers", help="Instead: what this node verified of its peers' audit logs.")
    ] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check every entry against its leaf, every signed tree head (root and Ed25519 signature),
    consistency between heads and inclusion of entries, and that the log still produces every head
    in the head file beside the database and every --trusted-head. Exit code 1 on any problem,
    and for a log that no signed head covers. With --peers, report what this node found
    witnessing its peers' logs; exit code 1 if one was caught rewriting its history."""
    from noosphere.cli.common import opened_node, run
    from noosphere.governance import head_file
    from noosphere.governance.audit import verify_log
    from noosphere.identity import public_key_from_text

    if peers:
        _witnessed(config, data_dir, token, as_json)
        return

    async def go() -> Verification:
        async with opened_node(config, data_dir, token, check_embedder=False) as node:
            try:
                public = public_key_from_text(public_key) if public_key else node.key.public
            except ValueError as exc:
                console.print(f"[red]error[/red]: {exc}")
                raise typer.Exit(2) from None
            entries = await node.store.audit_entries()
            heads = await node.store.tree_heads()
            anchors = head_file.read(node.settings.data_dir / head_file.HEAD_FILE)
        kept = [head_file.trusted(text) for text in trusted_head or []]
        return verify_log(entries, heads, public, sample, anchors, kept)

    report = run(go)
    if as_json:
        emit_json({"ok": report.ok, **vars(report)})
    else:
        unsigned = report.entries - report.signed_size
        console.print(
            f"{report.entries} entries, {report.heads} signed tree heads; "
            f"{report.consistency_checked} consistency and {report.inclusion_checked} inclusion "
            "proofs checked" + (f"; {unsigned} newest entries not signed yet" if unsigned else "")
        )
        for problem in report.problems:
            console.print(f"[red]FAIL[/red] {problem}")
        if report.ok:
            console.print("[green]the audit log verifies[/green]")
    if not report.ok:
        raise typer.Exit(1)


def _witnessed(config: ConfigOpt, data_dir: DataDirOpt, token: TokenOpt, as_json: bool) -> None:
    from noosphere.cli.common import opened_node, run

    async def go() -> list[Witnessed]:
        async with opened_node(config, data_dir, token, check_embedder=False) as node:
            return await node.store.witnessed()

    records = run(go)
    if as_json:
        emit_json(
            [
                {
                    "peer": r.peer,
                    "ok": r.problem is None,
                    "size": r.head.size,
                    "root": r.head.root.hex(),
                    "checked_at": r.checked_at.isoformat(),
                    "problem": r.problem,
                    "evidence": None if r.evidence is None else json.loads(r.evidence),
                }
                for r in records
            ]
        )
    else:
        if not records:
            console.print("no peer's audit log checked yet (the node checks its live peers as it runs)")
        for r in records:
            checked = r.checked_at.strftime("%Y-%m-%d %H:%M:%S UTC")
            if r.problem is None:
                console.print(
                    f"[green]ok[/green]   {r.peer}: {r.head.size} entries consistent, checked {checked}"
                )
            else:
                console.print(f"[red]FAIL[/red] {r.peer}: {r.problem} (found {checked}; evidence kept)")
    if any(r.problem is not None for r in records):
        raise typer.Exit(1)


@audit_app.command("heads")
def heads(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
) -> None:
    """Print the signed tree heads of the head file, one JSON line each: keep the newest somewhere
    else, and pass it to `audit verify --trusted-head SIZE:ROOT` later."""
    from noosphere.cli.common import opened_node, run
    from noosphere.governance import head_file

    async def go() -> list[str]:
        async with opened_node(config, data_dir, token, check_embedder=False) as node:
            return [
                head_file.to_line(h) for h in head_file.read(node.settings.data_dir / head_file.HEAD_FILE)
            ]

    for line in run(go):
        print(line)


@audit_app.command("public-key")
def public_key(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Print the node's Ed25519 public key (base64), for `audit verify --public-key` elsewhere."""
    from noosphere.cli.common import settings_from
    from noosphere.identity import load_or_create

    settings = settings_from(config, data_dir)
    typer.echo(load_or_create(settings.data_dir).public_text)
