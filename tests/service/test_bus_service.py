"""The bus on a real node: request/reply, audit records, and bad input."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import anyio
import pytest

from noosphere.bus import Bus, Envelope, Kind
from noosphere.errors import InvalidRequest, TimedOut
from noosphere.node import Node


async def answer_one(node: Node, mailbox: str) -> None:
    (got,) = await node.bus.receive(mailbox, 1, wait=10)
    await node.bus.reply(got.envelope, mailbox, {"sum": sum(got.envelope.payload["add"])})
    await node.bus.ack(mailbox, [got.envelope.id])


async def test_a_request_gets_its_response_through_a_fresh_inbox(any_node: Node) -> None:
    async with anyio.create_task_group() as group:
        group.start_soon(answer_one, any_node, "calculator")
        response = await any_node.bus.request(
            Envelope(Kind.REQUEST, "planner", {"add": [2, 3]}, recipient="calculator"), within=10
        )
    assert response.kind is Kind.RESPONSE
    assert response.payload == {"sum": 5}
    assert response.sender == "calculator"


async def test_an_unanswered_request_times_out_and_expires_unread(any_node: Node) -> None:
    with pytest.raises(TimedOut, match="no response to request"):
        await any_node.bus.request(Envelope(Kind.REQUEST, "planner", {}, recipient="asleep"), within=0.2)
    assert await any_node.bus.receive("asleep", 10) == []  # a late consumer never acts on it


async def test_every_sent_and_published_message_is_in_the_audit_log(any_node: Node) -> None:
    await any_node.bus.subscribe("watcher", "builds.>")
    sent = Envelope(Kind.COMMAND, "planner", {"do": "x"}, recipient="coder")
    await any_node.bus.send(sent)
    await any_node.bus.send(sent)  # a resend is not a second message
    await any_node.bus.publish(Envelope(Kind.EVENT, "ci", {}, topic="builds.done"))
    entries = [json.loads(e.entry) for e in await any_node.store.audit_entries()]
    assert [
        (e["actor"], e["kind"], e["body"]["type"], e["body"]["to"], e["body"]["delivered"]) for e in entries
    ] == [
        ("planner", "message", "COMMAND", "coder", 1),
        ("ci", "message", "EVENT", "topic:builds.done", 1),
    ]
    assert len(entries[0]["body"]["payload_sha256"]) == 64


def _bad_calls(bus: Bus) -> dict[str, Callable[[], Awaitable[object]]]:
    return {
        "use publish": lambda: bus.send(Envelope(Kind.EVENT, "a", topic="t")),
        "use send": lambda: bus.publish(Envelope(Kind.EVENT, "a", recipient="b")),
        "limit must be 1-1000": lambda: bus.receive("a", 0),
        "wait must be": lambda: bus.receive("a", 1, wait=10_000),
        "invalid subscription pattern": lambda: bus.subscribe("a", "x.>.y"),
    }


async def test_bad_bus_calls_are_refused_with_the_reason(any_node: Node) -> None:
    for message, call in _bad_calls(any_node.bus).items():
        with pytest.raises(InvalidRequest, match=message):
            await call()
