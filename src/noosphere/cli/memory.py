"""``noosphere memory …``: the memory service from the command line, on the node's data dir."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from noosphere.cli.common import (
    ConfigOpt,
    DataDirOpt,
    JsonOpt,
    TokenOpt,
    console,
    emit_json,
    node_as,
    opened_node,
    record_command,
    run,
    settings_from,
)
from noosphere.memory.bundle import ImportReport, export_lines, import_bundle
from noosphere.memory.model import ListQuery, Memory, MemoryDraft, SearchQuery, Zone

app = typer.Typer(callback=record_command, help="Store, search and manage memories.", no_args_is_help=True)

ZoneOpt = Annotated[Zone, typer.Option("--zone", "-z", help="private, shared or federated.")]
TagsOpt = Annotated[list[str] | None, typer.Option("--tag", "-t", help="Tag (repeatable).")]


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def _show(memories: list[Memory], scores: list[float] | None = None) -> None:
    table = Table("id", "zone", "kind", "content", *(["score"] if scores else []), show_lines=False)
    for i, m in enumerate(memories):
        content = m.content if len(m.content) <= 100 else m.content[:97] + "..."
        table.add_row(m.id, m.zone.value, m.kind, content, *([f"{scores[i]:.4f}"] if scores else []))
    console.print(table)


@app.command()
def add(
    content: str,
    zone: ZoneOpt = Zone.PRIVATE,
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

    async def go() -> None:
        async with node_as(settings_from(config, data_dir), token) as (node, principal):
            draft = MemoryDraft(
                content=content,
                zone=zone,
                kind=kind,
                tags=tags or [],
                supersedes=supersedes,
                expires_at=expires_at,
            )
            memory = await node.governor.run(
                principal,
                "memory_store",
                draft.model_dump(mode="json"),
                lambda: node.memory.store_one(principal, draft),
            )
        emit_json(memory.model_dump(mode="json")) if as_json else print(memory.id)

    run(go)


@app.command()
def search(
    query: str,
    limit: Annotated[int, typer.Option("--limit", "-n")] = 10,
    zones: Annotated[list[Zone] | None, typer.Option("--zone", "-z")] = None,
    kinds: Annotated[list[str] | None, typer.Option("--kind", "-k")] = None,
    tags: TagsOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Hybrid search over the memories you can see."""

    async def go() -> None:
        async with node_as(settings_from(config, data_dir), token) as (node, principal):
            q = SearchQuery(query=query, limit=limit, zones=zones, kinds=kinds, tags=tags)
            hits = await node.governor.run(
                principal,
                "memory_search",
                q.model_dump(mode="json"),
                lambda: node.memory.search(principal, q),
            )
        if as_json:
            emit_json([h.model_dump(mode="json") for h in hits])
        else:
            _show([h.memory for h in hits], [h.score for h in hits])

    run(go)


@app.command()
def get(
    memory_id: str, config: ConfigOpt = None, data_dir: DataDirOpt = None, token: TokenOpt = None
) -> None:
    """Print one memory as JSON."""

    async def go() -> None:
        async with node_as(settings_from(config, data_dir), token) as (node, principal):
            memory = await node.governor.run(
                principal, "memory_get", {"id": memory_id}, lambda: node.memory.get(principal, memory_id)
            )
            emit_json(memory.model_dump(mode="json"))

    run(go)


@app.command("list")
def list_(
    limit: Annotated[int, typer.Option("--limit", "-n")] = 50,
    zones: Annotated[list[Zone] | None, typer.Option("--zone", "-z")] = None,
    kinds: Annotated[list[str] | None, typer.Option("--kind", "-k")] = None,
    cursor: Annotated[int | None, typer.Option(help="Continue after this sequence number.")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List memories in write order."""

    async def go() -> None:
        async with node_as(settings_from(config, data_dir), token) as (node, principal):
            q = ListQuery(limit=limit, zones=zones, kinds=kinds, cursor=cursor)
            page = await node.governor.run(
                principal,
                "memory_list",
                q.model_dump(mode="json"),
                lambda: node.memory.list_memories(principal, q),
            )
        if as_json:
            emit_json(page.model_dump(mode="json"))
        else:
            _show(page.items)
            if page.next_cursor is not None:
                console.print(f"more: --cursor {page.next_cursor}")

    run(go)


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

    async def go() -> None:
        async with node_as(settings_from(config, data_dir), token) as (node, principal):
            args = {"id": memory_id, "content": content}
            newer = await node.governor.run(
                principal, "memory_update", args, lambda: node.memory.update(principal, memory_id, content)
            )
        if as_json:
            emit_json(newer.model_dump(mode="json"))
        else:
            console.print(f"{newer.id} supersedes {memory_id}")

    run(go)


@app.command()
def history(
    memory_id: str,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every version of a memory, oldest first."""

    async def go() -> None:
        async with node_as(settings_from(config, data_dir), token) as (node, principal):
            versions = await node.governor.run(
                principal,
                "memory_history",
                {"id": memory_id},
                lambda: node.memory.history(principal, memory_id),
            )
        if as_json:
            emit_json({"versions": [m.model_dump(mode="json") for m in versions]})
            return
        table = Table("id", "valid from", "until", "content")
        for m in versions:
            until = "" if m.invalid_at is None else f"{m.invalid_at:%Y-%m-%d %H:%M}"
            table.add_row(m.id, f"{m.valid_at:%Y-%m-%d %H:%M}", until, m.content)
        console.print(table)

    run(go)


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

    async def go() -> None:
        async with node_as(settings_from(config, data_dir), token) as (node, principal):
            if owner is not None:
                count = await node.governor.run(
                    principal,
                    "memory_forget_owner",
                    {"owner": owner},
                    lambda: node.memory.forget_owner(principal, owner),
                )
                console.print(f"forgot {count} memories of {owner}")
            else:
                assert memory_id is not None
                await node.governor.run(
                    principal,
                    "memory_forget",
                    {"id": memory_id},
                    lambda: node.memory.forget(principal, memory_id),
                )
                console.print(f"forgot {memory_id}")

    run(go)


@app.command()
def export(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File (default: stdout).")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
) -> None:
    """Export the memories you can see as a JSONL bundle."""

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
    """Import a bundle (re-embeds if its model differs from this node's)."""

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
    """Re-embed every memory with the configured embedder (after changing embedders)."""

    async def go() -> None:
        async with opened_node(config, data_dir, token, check_embedder=False) as node:
            with _progress() as bar:
                task = bar.add_task(f"re-embedding with {node.memory.embedder.model_id}", total=None)

                def report(done: int, total: int) -> None:
                    bar.update(task, completed=done, total=total)

                count = await node.memory.reembed(report)
        console.print(f"re-embedded {count} memories")

    run(go)


@app.command()
def gc(config: ConfigOpt = None, data_dir: DataDirOpt = None, token: TokenOpt = None) -> None:
    """Purge expired memories and old tombstones now."""

    async def go() -> None:
        async with node_as(settings_from(config, data_dir), token) as (node, _):
            report = await node.memory.collect_garbage()
        console.print(f"purged {report.expired} expired memories and {report.tombstones} tombstones")

    run(go)
