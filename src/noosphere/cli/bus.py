"""``noosphere bus send|publish|receive|ack|status|subscribe|unsubscribe|subscriptions``.

The CLI opens the node's store directly, so it reaches the same durable mailboxes as a running
node (which sees what the CLI sent within ``bus.poll_seconds``). With ``bus.transport: memory``
the mailboxes live inside the node process: use the REST API instead.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from noosphere.auth.principal import Principal
from noosphere.bus import Kind, Sent
from noosphere.bus.access import envelope_from, own_mailbox, sender_for, visible_scope
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
from noosphere.errors import InvalidRequest
from noosphere.node import Node

bus_app = typer.Typer(
    callback=record_command, help="The message bus: mailboxes, topics, subscriptions.", no_args_is_help=True
)

KindOpt = Annotated[Kind, typer.Option("--kind", help="Envelope type.")]
PayloadOpt = Annotated[str, typer.Option("--payload", help="JSON object.")]
PriorityOpt = Annotated[int, typer.Option("--priority", min=0, max=9, help="0 (lowest) to 9.")]
TtlOpt = Annotated[float | None, typer.Option("--ttl", help="Seconds until it expires undelivered.")]
SenderOpt = Annotated[str | None, typer.Option("--as", help="Admin only: send as this address.")]


@asynccontextmanager
async def _bus_node(
    config: Path | None, data_dir: Path | None, token: str | None
) -> AsyncIterator[tuple[Node, Principal]]:
    settings = settings_from(config, data_dir)
    if settings.bus.transport == "memory":
        raise InvalidRequest(
            "bus.transport is memory: the mailboxes live in the node process; use the REST API"
        )
    async with node_as(settings, token, check_embedder=False) as (node, caller):
        yield node, caller


def _deliver(
    where: tuple[Path | None, Path | None, str | None],
    kind: Kind,
    payload: str,
    priority: int,
    ttl: float | None,
    sender: str | None,
    recipient: str | None = None,
    topic: str | None = None,
) -> Sent:
    """Send or publish as the CLI's principal; ``where`` is (config, data dir, token)."""

    async def go() -> Sent:
        try:
            body: Any = json.loads(payload)
        except json.JSONDecodeError as exc:
            raise InvalidRequest(f"--payload is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise InvalidRequest("--payload must be a JSON object")
        async with _bus_node(*where) as (node, caller):
            envelope = envelope_from(
                caller,
                kind,
                body,
                recipient=recipient,
                topic=topic,
                priority=priority,
                ttl_seconds=ttl,
                sender=sender,
            )
            args = dict(
                kind=kind, payload=body, recipient=recipient, topic=topic, priority=priority, ttl_seconds=ttl
            )
            args["sender"] = sender
            return await node.governor.run(caller, "bus_send", args, lambda: node.bus.deliver(envelope))

    return run(go)


@bus_app.command("send")
def send(
    recipient: Annotated[str, typer.Argument(help="Mailbox address (an agent's name, user:NAME, admin).")],
    kind: KindOpt = Kind.COMMAND,
    payload: PayloadOpt = "{}",
    priority: PriorityOpt = 5,
    ttl: TtlOpt = None,
    sender: SenderOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Put an envelope in a mailbox; prints its id."""
    sent = _deliver((config, data_dir, token), kind, payload, priority, ttl, sender, recipient=recipient)
    emit_json(vars(sent)) if as_json else print(sent.id)


@bus_app.command("publish")
def publish(
    topic: Annotated[str, typer.Argument(help="Topic, dot-separated (e.g. builds.main.done).")],
    kind: KindOpt = Kind.EVENT,
    payload: PayloadOpt = "{}",
    priority: PriorityOpt = 5,
    ttl: TtlOpt = None,
    sender: SenderOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Copy an envelope into every subscriber's mailbox; prints the mailboxes it reached."""
    sent = _deliver((config, data_dir, token), kind, payload, priority, ttl, sender, topic=topic)
    if as_json:
        emit_json(vars(sent))
    else:
        print("\n".join(sent.delivered_to))
        console.print(f"{sent.id}: {len(sent.delivered_to)} subscriber(s)")


@bus_app.command("receive")
def receive(
    mailbox: Annotated[str, typer.Argument(help="Mailbox to read (your own unless admin).")],
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Most envelopes to take.")] = 10,
    wait: Annotated[float, typer.Option(help="Seconds to wait for a first envelope.")] = 0.0,
    lease: Annotated[float | None, typer.Option(help="Seconds before redelivery (default: setting).")] = None,
    ack: Annotated[bool, typer.Option("--ack", help="Acknowledge what is received at once.")] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Lease envelopes from a mailbox, highest priority first; prints one JSON object per line."""

    async def go() -> None:
        async with _bus_node(config, data_dir, token) as (node, caller):
            box = own_mailbox(caller, mailbox)
            args = {"mailbox": box, "limit": limit, "wait_seconds": wait, "lease_seconds": lease}
            got = await node.governor.run(
                caller, "bus_receive", args, lambda: node.bus.receive(box, limit, wait, lease)
            )
            if ack:
                ids = [d.envelope.id for d in got]
                await node.governor.run(
                    caller, "bus_ack", {"mailbox": box, "ids": ids}, lambda: node.bus.ack(box, ids)
                )
        rows = [{"attempt": d.attempt, "envelope": d.envelope.as_dict()} for d in got]
        if as_json:
            emit_json(rows)
        else:
            for row in rows:
                print(orjson.dumps(row).decode())

    run(go)


@bus_app.command("ack")
def ack_(
    mailbox: Annotated[str, typer.Argument(help="The mailbox the envelopes came from.")],
    ids: Annotated[list[str], typer.Argument(help="Envelope ids.")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
) -> None:
    """Settle received envelopes for good."""

    async def go() -> None:
        async with _bus_node(config, data_dir, token) as (node, caller):
            box = own_mailbox(caller, mailbox)
            settled = await node.governor.run(
                caller, "bus_ack", {"mailbox": box, "ids": ids}, lambda: node.bus.ack(box, ids)
            )
        console.print(f"settled {settled} of {len(ids)}")

    run(go)


@bus_app.command("status")
def status(
    config: ConfigOpt = None, data_dir: DataDirOpt = None, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Ready, in-flight and dead envelopes per mailbox."""

    async def go() -> None:
        async with _bus_node(config, data_dir, token) as (node, caller):
            stats = await node.bus.stats(visible_scope(caller))
        if as_json:
            emit_json([vars(s) for s in stats])
            return
        table = Table("mailbox", "ready", "in flight", "dead")
        for s in stats:
            table.add_row(s.mailbox, str(s.ready), str(s.in_flight), str(s.dead))
        console.print(table)

    run(go)


@bus_app.command("subscribe")
def subscribe(
    pattern: Annotated[str, typer.Argument(help="Topic pattern: * one token, > the rest.")],
    subscriber: Annotated[str | None, typer.Option(help="Admin only: subscribe this mailbox.")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
) -> None:
    """Subscribe a mailbox (your own by default) to a topic pattern."""

    async def go() -> None:
        async with _bus_node(config, data_dir, token) as (node, caller):
            box = sender_for(caller, subscriber)
            await node.governor.run(
                caller,
                "bus_subscribe",
                {"pattern": pattern, "subscriber": box},
                lambda: node.bus.subscribe(box, pattern),
            )

    run(go)


@bus_app.command("unsubscribe")
def unsubscribe(
    pattern: Annotated[str, typer.Argument(help="The pattern to remove.")],
    subscriber: Annotated[str | None, typer.Option(help="Admin only: another mailbox.")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
) -> None:
    """Remove a subscription."""

    async def go() -> bool:
        async with _bus_node(config, data_dir, token) as (node, caller):
            box = sender_for(caller, subscriber)
            return await node.governor.run(
                caller,
                "bus_unsubscribe",
                {"pattern": pattern, "subscriber": box},
                lambda: node.bus.unsubscribe(box, pattern),
            )

    if not run(go):
        console.print("no such subscription")
        raise typer.Exit(1)


@bus_app.command("subscriptions")
def subscriptions(
    config: ConfigOpt = None, data_dir: DataDirOpt = None, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """List topic subscriptions (the admin sees all)."""

    async def go() -> list[tuple[str, str]]:
        async with _bus_node(config, data_dir, token) as (node, caller):
            return await node.bus.subscriptions(visible_scope(caller))

    pairs = run(go)
    if as_json:
        emit_json([{"subscriber": s, "pattern": p} for s, p in pairs])
    else:
        for s, p in pairs:
            print(f"{s}\t{p}")
