"""``noosphere agent export`` and ``noosphere agent import``: move an agent between nodes as a
signed package (``agents/package.py``)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import anyio
import typer

from noosphere.agents.package import MAX_MEMORIES, pack, unpack
from noosphere.auth.principal import Principal, PrincipalKind, principal_id
from noosphere.cli.common import (
    ConfigOpt,
    DataDirOpt,
    JsonOpt,
    TokenOpt,
    console,
    emit_json,
    opened_node,
    run,
)
from noosphere.cli.principals import agent_app
from noosphere.errors import InvalidRequest, NoosphereError
from noosphere.federation.service import effective_peers
from noosphere.memory.access import check_write
from noosphere.memory.model import Filters, Memory
from noosphere.node import Node
from noosphere.store.contract import Viewer

PAGE = 1000


async def _own_memories(node: Node, owner: str) -> list[Memory]:
    """The owner's live memories that can travel (conversations are sealed for the owner's
    secret on this node, so they stay)."""
    out: list[Memory] = []
    after: int | None = None
    now = datetime.now(UTC)
    while True:
        page = await node.store.list_memories(Viewer(None), Filters(owner=owner), now, PAGE, after)
        out.extend(m for m in page if not m.encrypted)
        if len(page) < PAGE:
            return out
        after = page[-1].seq


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
    target = out or Path(f"{name}.agent.json")

    async def go() -> int:
        async with opened_node(config, data_dir, token, check_embedder=False) as node:
            profile = await node.agents.get(name)
            owned = await _own_memories(node, principal_id(PrincipalKind.AGENT, name))
            owned.sort(key=lambda m: (m.importance, m.valid_at), reverse=True)
            chosen = owned[:memories]
            data = pack(node.key, profile, chosen)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            await node.audit.append("admin", "agent.exported", {"agent": name, "memories": len(chosen)})
            return len(chosen)

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
    its peers, unless --trust-any."""

    async def go() -> tuple[str, str, int, str]:
        try:
            package = unpack(await anyio.Path(path).read_bytes())
        except OSError as exc:
            raise InvalidRequest(f"cannot read {path}: {exc.strerror}") from None
        async with opened_node(config, data_dir, token) as node:
            peers = effective_peers(node.settings.federation, await node.store.stored_peers(), set())
            known = package.node == node.key.id or package.node in peers
            if not known and not trust_any:
                raise InvalidRequest(
                    f"the package is signed by {package.node}, which is not a peer of this node; "
                    "add it with `noosphere peers add`, or pass --trust-any"
                )
            profile = package.profile.model_copy(update={"name": name}) if name else package.profile
            profile = type(profile).model_validate(profile.model_dump())  # the new name checked too
            would_be = Principal(
                principal_id(PrincipalKind.AGENT, profile.name),
                PrincipalKind.AGENT,
                profile.name,
                profile.level,
            )
            for zone in {memory.zone for memory in package.memories}:
                check_write(would_be, zone)  # before anything is created
            _, secret = await node.agents.create(profile)
            agent = await node.authenticate(secret)
            drafts = [memory.draft() for memory in package.memories]
            batch = node.settings.memory.max_batch
            try:
                for start in range(0, len(drafts), batch):
                    await node.memory.store_many(agent, drafts[start : start + batch])
            except NoosphereError:
                await node.remove(PrincipalKind.AGENT, profile.name)  # all or nothing
                raise
            body = {"agent": profile.name, "signer": package.node, "memories": len(drafts)}
            await node.audit.append("admin", "agent.imported", body)
            return profile.name, secret, len(drafts), package.node

    created, secret, count, signer = run(go)
    agent_id = principal_id(PrincipalKind.AGENT, created)
    if as_json:
        emit_json({"id": agent_id, "signer": signer, "memories": count, "token": secret})
        return
    console.print(
        f"created {agent_id} from a package signed by {signer}, with {count} memories; "
        "its token (shown once):"
    )
    print(secret)
