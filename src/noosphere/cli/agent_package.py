"""``noosphere agent export`` and ``noosphere agent import``: move an agent between nodes as a
signed package (``agents/package.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from noosphere.cli.options import ConfigOpt, DataDirOpt, JsonOpt, TokenOpt, refuse_while_running, where
from noosphere.cli.output import console, emit_json
from noosphere.cli.principals import agent_app

if TYPE_CHECKING:
    from noosphere.agents.package import Imported

MAX_MEMORIES = 10_000  # as agents/package.py bounds a package (a test keeps the two equal)


@agent_app.command("export")
def agent_export(
    name: str,
    out: Annotated[
        Path | None, typer.Option("--out", help="File to write (default NAME.agent.json).")
    ] = None,
    memories: Annotated[
        int, typer.Option("--memories", min=0, max=MAX_MEMORIES, help="Its most important memories to take.")
    ] = 200,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
) -> None:
    """Write an agent as a package signed by this node: its profile (system prompt, model,
    tools, zones, rules) and its most important memories. The file holds its private memories:
    keep it as you would the node's data."""
    from noosphere.agents.package import export_agent
    from noosphere.cli.common import opened_node, run

    target = out or Path(f"{name}.agent.json")

    async def go() -> int:
        async with opened_node(config, data_dir, token, check_embedder=False) as node:
            return await export_agent(node, name, memories, target)

    taken = run(go)
    console.print(f"agent {name} exported to {target} with {taken} memories, signed by this node")


@agent_app.command("import")
def agent_import(
    path: Path,
    name: Annotated[str | None, typer.Option("--name", help="Create it under another name.")] = None,
    trust_any: Annotated[
        bool,
        typer.Option("--trust-any", help="Accept a package signed by a node that is not a peer."),
    ] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an agent from a package another node exported, after checking its signature, with
    its memories; prints the new agent's token (once). The signer must be this node or one of
    its peers, unless --trust-any. On a stopped node."""
    import anyio

    from noosphere.agents.package import import_agent, unpack
    from noosphere.auth.principal import PrincipalKind, principal_id
    from noosphere.cli.common import opened_node, run
    from noosphere.errors import InvalidRequest

    refuse_while_running(where(config, data_dir), "agent import")

    async def go() -> Imported:
        try:
            package = unpack(await anyio.Path(path).read_bytes())
        except OSError as exc:
            raise InvalidRequest(f"cannot read {path}: {exc.strerror}") from None
        async with opened_node(config, data_dir, token) as node:
            return await import_agent(node, package, name, trust_any)

    imported = run(go)
    created, secret, count, signer = imported.name, imported.token, imported.memories, imported.signer
    agent_id = principal_id(PrincipalKind.AGENT, created)
    if as_json:
        emit_json({"id": agent_id, "signer": signer, "memories": count, "token": secret})
        return
    console.print(
        f"created {agent_id} from a package signed by {signer}, with {count} memories; "
        "its token (shown once):"
    )
    print(secret)
