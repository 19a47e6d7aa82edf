"""``noosphere bus send|publish|receive|ack|status|subscribe|unsubscribe|subscriptions``, through the
node's API: a CLI command reaches the same mailboxes as the node's agents, whatever the bus
transport."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import typer

from noosphere.cli.client import fail, segment
from noosphere.cli.options import ConfigOpt, DataDirOpt, JsonOpt, TokenOpt, call, record_command
from noosphere.cli.output import console, emit_json, table

bus_app = typer.Typer(
    callback=record_command, help="The message bus: mailboxes, topics, subscriptions.", no_args_is_help=True
)

KindName = Literal[
    "REQUEST",
    "RESPONSE",
    "COMMAND",
    "ACK",
    "EVENT",
    "TASK_DELEGATE",
    "TASK_ACCEPT",
    "TASK_REJECT",
    "TASK_COMPLETE",
    "ESCALATE",
    "STATUS",
    "HEARTBEAT",
]
KindOpt = Annotated[KindName, typer.Option("--kind", help="Envelope type.")]
PayloadOpt = Annotated[str, typer.Option("--payload", help="JSON object.")]
PriorityOpt = Annotated[int, typer.Option("--priority", min=0, max=9, help="0 (lowest) to 9.")]
TtlOpt = Annotated[float | None, typer.Option("--ttl", help="Seconds until it expires undelivered.")]
SenderOpt = Annotated[str | None, typer.Option("--as", help="Admin only: send as this address.")]


def _payload(text: str) -> dict[str, Any]:
    try:
        body: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        fail("invalid_request", f"--payload is not JSON: {exc}")
    if not isinstance(body, dict):
        fail("invalid_request", "--payload must be a JSON object")
    return body


def _deliver(
    where: tuple[ConfigOpt, DataDirOpt, TokenOpt],
    kind: str,
    payload: str,
    priority: int,
    ttl: float | None,
    sender: str | None,
    **address: str,
) -> dict[str, Any]:
    """Send (``recipient=``) or publish (``topic=``) as the caller; ``where`` is (config, data dir,
    token)."""
    body = {"kind": kind, "payload": _payload(payload), "priority": priority, "ttl_seconds": ttl, **address}
    if sender is not None:
        body["sender"] = sender
    sent: dict[str, Any] = call(*where, "POST", "/api/v1/bus/messages", body)
    return sent


@bus_app.command("send")
def send(
    recipient: Annotated[str, typer.Argument(help="Mailbox address (an agent's name, user:NAME, admin).")],
    kind: KindOpt = "COMMAND",
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
    emit_json(sent) if as_json else print(sent["id"])


@bus_app.command("publish")
def publish(
    topic: Annotated[str, typer.Argument(help="Topic, dot-separated (e.g. builds.main.done).")],
    kind: KindOpt = "EVENT",
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
        emit_json(sent)
    else:
        print("\n".join(sent["delivered_to"]))
        console.print(f"{sent['id']}: {len(sent['delivered_to'])} subscriber(s)")


@bus_app.command("receive")
def receive(
    mailbox: Annotated[str, typer.Argument(help="Mailbox to read (your own unless admin).")],
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Most envelopes to take.")] = 10,
    wait: Annotated[float, typer.Option(min=0, help="Seconds to wait for a first envelope.")] = 0.0,
    lease: Annotated[float | None, typer.Option(help="Seconds before redelivery (default: setting).")] = None,
    ack: Annotated[bool, typer.Option("--ack", help="Acknowledge what is received at once.")] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Lease envelopes from a mailbox, highest priority first; prints one JSON object per line."""
    box = segment(mailbox)
    body = {"limit": limit, "wait_seconds": float(wait), "lease_seconds": lease}
    got = call(
        config, data_dir, token, "POST", f"/api/v1/bus/mailboxes/{box}/receive", body, timeout=wait + 60
    )
    if ack and got:
        ids = [d["envelope"]["id"] for d in got]
        call(config, data_dir, token, "POST", f"/api/v1/bus/mailboxes/{box}/ack", {"ids": ids})
    if as_json:
        emit_json(got)
    else:
        for row in got:
            print(json.dumps(row, ensure_ascii=False, separators=(",", ":")))


@bus_app.command("ack")
def ack_(
    mailbox: Annotated[str, typer.Argument(help="The mailbox the envelopes came from.")],
    ids: Annotated[list[str], typer.Argument(help="Envelope ids.")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
) -> None:
    """Settle received envelopes for good."""
    path = f"/api/v1/bus/mailboxes/{segment(mailbox)}/ack"
    settled = call(config, data_dir, token, "POST", path, {"ids": ids})["settled"]
    console.print(f"settled {settled} of {len(ids)}")


@bus_app.command("status")
def status(
    config: ConfigOpt = None, data_dir: DataDirOpt = None, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Ready, in-flight and dead envelopes per mailbox."""
    stats = call(config, data_dir, token, "GET", "/api/v1/bus/mailboxes")
    if as_json:
        emit_json(stats)
        return
    shown = table("mailbox", "ready", "in flight", "dead")
    for s in stats:
        shown.add_row(s["mailbox"], str(s["ready"]), str(s["in_flight"]), str(s["dead"]))
    console.print(shown)


@bus_app.command("subscribe")
def subscribe(
    pattern: Annotated[str, typer.Argument(help="Topic pattern: * one token, > the rest.")],
    subscriber: Annotated[str | None, typer.Option(help="Admin only: subscribe this mailbox.")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
) -> None:
    """Subscribe a mailbox (your own by default) to a topic pattern."""
    body = {"pattern": pattern, "subscriber": subscriber}
    call(config, data_dir, token, "PUT", "/api/v1/bus/subscriptions", body)


@bus_app.command("unsubscribe")
def unsubscribe(
    pattern: Annotated[str, typer.Argument(help="The pattern to remove.")],
    subscriber: Annotated[str | None, typer.Option(help="Admin only: another mailbox.")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
) -> None:
    """Remove a subscription."""
    params = {"pattern": pattern, "subscriber": subscriber}
    call(config, data_dir, token, "DELETE", "/api/v1/bus/subscriptions", params=params)


@bus_app.command("subscriptions")
def subscriptions(
    config: ConfigOpt = None, data_dir: DataDirOpt = None, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """List topic subscriptions (the admin sees all)."""
    pairs = call(config, data_dir, token, "GET", "/api/v1/bus/subscriptions")
    if as_json:
        emit_json(pairs)
    else:
        for pair in pairs:
            print(f"{pair['subscriber']}\t{pair['pattern']}")
