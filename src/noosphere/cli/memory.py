"""``noosphere memory …``: the memory service from the command line. Through the running node's
API when one runs on the data directory; export, import and re-embedding open the store itself."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from noosphere.cli.client import segment
from noosphere.cli.options import (
    ConfigOpt,
    DataDirOpt,
    JsonOpt,
    TokenOpt,
    ZoneName,
    call,
    record_command,
    refuse_while_running,
    where,
)
from noosphere.cli.output import console, emit_json, rich_console, table

app = typer.Typer(callback=record_command, help="Store, search and manage memories.", no_args_is_help=True)

ZoneOpt = Annotated[ZoneName, typer.Option("--zone", "-z", help="private, shared or federated.")]
ZonesOpt = Annotated[list[ZoneName] | None, typer.Option("--zone", "-z")]
TagsOpt = Annotated[list[str] | None, typer.Option("--tag", "-t", help="Tag (repeatable).")]


def _progress() -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=rich_console(),
    )


def _show(memories: list[dict[str, Any]], scores: list[float] | None = None) -> None:
    shown = table("id", "zone", "kind", "content", *(["score"] if scores else []))
    for i, m in enumerate(memories):
        content = m["content"] if len(m["content"]) <= 100 else m["content"][:97] + "..."
        shown.add_row(m["id"], m["zone"], m["kind"], content, *([f"{scores[i]:.4f}"] if scores else []))
    console.print(shown)


@app.command()
def add(
    content: str,
    zone: ZoneOpt = ZoneName.PRIVATE,
    kind: Annotated[str, typer.Option("--kind", "-k")] = "fact",
    tags: TagsOpt = None,
    supersedes: Annotated[str | None, typer.Option(help="Id of the memory this one replaces.")] = None,
    expires_at: Annotated[datetime | None, typer.Option(help="Forget after this time (UTC).")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Store a memory and print its id."""
    draft: dict[str, Any] = {"content": content, "zone": zone, "kind": kind, "tags": tags or []}
    if supersedes is not None:
        draft["supersedes"] = supersedes
    if expires_at is not None:
        draft["expires_at"] = expires_at.isoformat()
    memory = call(config, data_dir, token, "POST", "/api/v1/memories", draft)
    emit_json(memory) if as_json else print(memory["id"])


@app.command()
def search(
    query: str,
    limit: Annotated[int, typer.Option("--limit", "-n")] = 10,
    zones: ZonesOpt = None,
    kinds: Annotated[list[str] | None, typer.Option("--kind", "-k")] = None,
    tags: TagsOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Hybrid search over the memories you can see."""
    body = {"query": query, "limit": limit, "zones": zones, "kinds": kinds, "tags": tags}
    hits = call(config, data_dir, token, "POST", "/api/v1/memories/search", body)["hits"]
    if as_json:
        emit_json(hits)
    else:
        _show([h["memory"] for h in hits], [h["score"] for h in hits])


@app.command()
def get(
    memory_id: str, config: ConfigOpt = None, data_dir: DataDirOpt = None, token: TokenOpt = None
) -> None:
    """Print one memory as JSON."""
    emit_json(call(config, data_dir, token, "GET", f"/api/v1/memories/{segment(memory_id)}"))


@app.command("list")
def list_(
    limit: Annotated[int, typer.Option("--limit", "-n")] = 50,
    zones: ZonesOpt = None,
    kinds: Annotated[list[str] | None, typer.Option("--kind", "-k")] = None,
    cursor: Annotated[int | None, typer.Option(help="Continue after this sequence number.")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List memories in write order."""
    params = {"limit": limit, "zones": zones, "kinds": kinds, "cursor": cursor}
    page = call(config, data_dir, token, "GET", "/api/v1/memories", params=params)
    if as_json:
        emit_json(page)
    else:
        _show(page["items"])
        if page["next_cursor"] is not None:
            console.print(f"more: --cursor {page['next_cursor']}")


@app.command()
def update(
    memory_id: str,
    content: str,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Update a memory: a new version with CONTENT (everything else kept) that supersedes it."""
    path = f"/api/v1/memories/{segment(memory_id)}/versions"
    newer = call(config, data_dir, token, "POST", path, {"content": content})
    if as_json:
        emit_json(newer)
    else:
        console.print(f"{newer['id']} supersedes {memory_id}")


@app.command()
def history(
    memory_id: str,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every version of a memory, oldest first."""
    versions = call(config, data_dir, token, "GET", f"/api/v1/memories/{segment(memory_id)}/history")
    if as_json:
        emit_json(versions)
        return
    shown = table("id", "valid from", "until", "content")
    for m in versions["versions"]:
        until = "" if m["invalid_at"] is None else _minute(m["invalid_at"])
        shown.add_row(m["id"], _minute(m["valid_at"]), until, m["content"])
    console.print(shown)


@app.command()
def forget(
    memory_id: Annotated[str | None, typer.Argument()] = None,
    owner: Annotated[str | None, typer.Option(help="Forget every memory of this owner (GDPR).")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
) -> None:
    """Forget a memory for good, or (with --owner) everything an owner stored."""
    if (memory_id is None) == (owner is None):
        console.print("[red]error[/red]: give a memory id or --owner, not both")
        raise typer.Exit(2)
    if owner is not None:
        gone = call(config, data_dir, token, "DELETE", "/api/v1/memories", params={"owner": owner})
        console.print(f"forgot {gone['deleted']} memories of {owner}")
    else:
        assert memory_id is not None
        call(config, data_dir, token, "DELETE", f"/api/v1/memories/{segment(memory_id)}")
        console.print(f"forgot {memory_id}")


@app.command()
def gc(config: ConfigOpt = None, data_dir: DataDirOpt = None, token: TokenOpt = None) -> None:
    """Purge expired memories and old tombstones now."""
    report = call(config, data_dir, token, "POST", "/api/v1/memories/gc")
    console.print(f"purged {report['expired']} expired memories and {report['tombstones']} tombstones")


def _minute(stamp: str) -> str:
    return datetime.fromisoformat(stamp).strftime("%Y-%m-%d %H:%M")


@app.command()
def export(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File (default: stdout).")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
) -> None:
    """Export the memories you can see as a JSONL bundle (reads the store the node uses)."""
    from noosphere.cli.common import node_as, run, settings_from
    from noosphere.memory.bundle import export_lines

    async def go() -> None:
        async with node_as(settings_from(config, data_dir), token) as (node, principal):
            total = await node.store.count()

            async def write() -> int:
                sink = output.open("w", encoding="utf-8") if output else sys.stdout
                try:
                    with _progress() as bar:
                        task = bar.add_task("exporting", total=total)
                        count = -1
                        async for line in export_lines(node.memory, principal):
                            sink.write(line + "\n")
                            count += 1
                            bar.update(task, completed=count)
                finally:
                    if output:
                        sink.close()
                return count

            count = await node.governor.run(principal, "memory_export", {"output": str(output or "-")}, write)
        console.print(f"exported {count} memories")

    run(go)


@app.command("import")
def import_(
    source: Annotated[Path, typer.Argument(help="Bundle file ('-' for stdin).")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
) -> None:
    """Import a bundle (re-embeds if its model differs from this node's), into a stopped node."""
    from noosphere.cli.common import node_as, run, settings_from
    from noosphere.memory.bundle import ImportReport, import_bundle

    refuse_while_running(where(config, data_dir), "memory import")

    async def go() -> None:
        async with node_as(settings_from(config, data_dir), token) as (node, principal):

            async def read() -> ImportReport:
                handle = sys.stdin if str(source) == "-" else source.open(encoding="utf-8")
                try:
                    with _progress() as bar:
                        task = bar.add_task("importing", total=None)
                        return await import_bundle(
                            node.memory, principal, handle, lambda n: bar.advance(task, n)
                        )
                finally:
                    if handle is not sys.stdin:
                        handle.close()

            report = await node.governor.run(principal, "memory_import", {"source": str(source)}, read)
        console.print(
            f"imported {report.imported}, skipped {report.skipped} already present, "
            f"re-embedded {report.reembedded}"
        )

    run(go)


@app.command()
def reembed(config: ConfigOpt = None, data_dir: DataDirOpt = None, token: TokenOpt = None) -> None:
    """Re-embed every memory with the configured embedder (after changing embedders), on a
    stopped node."""
    from noosphere.cli.common import opened_node, run

    refuse_while_running(where(config, data_dir), "memory reembed")

    async def go() -> None:
        async with opened_node(config, data_dir, token, check_embedder=False) as node:
            with _progress() as bar:
                task = bar.add_task(f"re-embedding with {node.memory.embedder.model_id}", total=None)

                def report(done: int, total: int) -> None:
                    bar.update(task, completed=done, total=total)

                count = await node.memory.reembed(report)
        console.print(f"re-embedded {count} memories")

    run(go)
