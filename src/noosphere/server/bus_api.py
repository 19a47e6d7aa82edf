"""REST: the message bus. A caller sends as its own mailbox address (the admin may name another)
and receives only from its own mailbox (the admin from any)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from noosphere.auth.principal import Principal
from noosphere.bus import Delivery, Envelope, Kind, MailboxStats, Sent
from noosphere.bus.access import (
    MAX_TTL_SECONDS,
    check_caller,
    envelope_from,
    own_mailbox,
    sender_for,
    visible_scope,
)
from noosphere.bus.envelope import DEFAULT_PRIORITY
from noosphere.errors import NotFound
from noosphere.server.deps import NodeDep, get_principal

router = APIRouter(prefix="/api/v1/bus", tags=["bus"])


async def bus_caller(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    return check_caller(principal)


CallerDep = Annotated[Principal, Depends(bus_caller)]


_TOPIC_SCHEMA: JsonDict = {"type": "string", "pattern": r"^[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){0,15}$"}


class EnvelopeIn(BaseModel):
    # Exactly one of recipient and topic, as the schema states it for clients.
    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {"required": ["recipient"], "properties": {"recipient": {"type": "string", "minLength": 1}}},
                {"required": ["topic"], "properties": {"topic": _TOPIC_SCHEMA}},
            ],
            "not": {
                "required": ["recipient", "topic"],
                "properties": {"recipient": {"type": "string"}, "topic": {"type": "string"}},
            },
        }
    )

    kind: Kind
    recipient: str | None = Field(None, description="A mailbox; or give a topic.")
    topic: str | None = Field(None, description="A topic to publish to; or give a recipient.")
    payload: dict[str, Any] = Field(default_factory=dict)
    id: str | None = Field(None, description="Sending the same id twice delivers once (default: new).")
    correlation_id: str | None = None
    reply_to: str | None = None
    priority: int = Field(DEFAULT_PRIORITY, ge=0, le=9, description="0 (lowest) to 9.")
    ttl_seconds: float | None = Field(
        None, gt=0, le=MAX_TTL_SECONDS, strict=True, description="Undelivered after this long, it expires."
    )
    sender: str | None = Field(None, description="Admin only: send as another address.")

    def envelope(self, caller: Principal) -> Envelope:
        return envelope_from(
            caller,
            self.kind,
            self.payload,
            recipient=self.recipient,
            topic=self.topic,
            priority=self.priority,
            ttl_seconds=self.ttl_seconds,
            message_id=self.id,
            correlation_id=self.correlation_id,
            reply_to=self.reply_to,
            sender=self.sender,
        )


class RequestIn(EnvelopeIn):
    kind: Kind = Kind.REQUEST
    timeout_seconds: float | None = Field(None, gt=0, le=600, description="Default: bus setting.")


class EnvelopeOut(BaseModel):
    id: str
    kind: Kind
    sender: str
    recipient: str | None
    topic: str | None
    correlation_id: str | None
    reply_to: str | None
    priority: int
    created_at: datetime
    expires_at: datetime | None
    payload: dict[str, Any]


def _out(envelope: Envelope) -> EnvelopeOut:
    return EnvelopeOut(**envelope.as_dict())


class DeliveryOut(BaseModel):
    attempt: int
    envelope: EnvelopeOut


class ReceiveIn(BaseModel):
    limit: int = Field(10, ge=1, le=1000)
    wait_seconds: float = Field(
        0.0, ge=0, strict=True, description="Long-poll: wait this long for a first message."
    )
    lease_seconds: float | None = Field(None, gt=0, strict=True, description="Default: bus setting.")


class AckIn(BaseModel):
    ids: list[str] = Field(max_length=1000)


class NackIn(AckIn):
    delay_seconds: float = Field(0.0, ge=0, strict=True)


_WORD = r"([A-Za-z0-9_-]{1,64}|\*)"
_SUBSCRIPTION_PATTERN = rf"^(>|{_WORD}(\.{_WORD}){{0,14}}(\.({_WORD}|>))?)$"


class SubscriptionIn(BaseModel):
    pattern: str = Field(
        description="Topic pattern: `*` one token, `>` the rest (e.g. `tasks.>`).",
        # Tokens or `*`, then at most 16 in all, `>` only as the last one.
        json_schema_extra={"pattern": _SUBSCRIPTION_PATTERN},
    )
    subscriber: str | None = Field(None, max_length=128, description="Admin only: another mailbox.")


class Subscription(BaseModel):
    subscriber: str
    pattern: str


@router.post("/messages", summary="Send to a mailbox or publish to a topic")
async def send(body: EnvelopeIn, node: NodeDep, caller: CallerDep) -> Sent:
    envelope = body.envelope(caller)
    return await node.governor.run(
        caller, "bus_send", body.model_dump(mode="json"), lambda: node.bus.deliver(envelope)
    )


@router.post("/requests", summary="Send a request and wait for its response (504 on timeout)")
async def request(body: RequestIn, node: NodeDep, caller: CallerDep) -> EnvelopeOut:
    envelope = body.envelope(caller)
    answer = await node.governor.run(
        caller,
        "bus_send",
        body.model_dump(mode="json"),
        lambda: node.bus.request(envelope, body.timeout_seconds),
    )
    return _out(answer)


@router.post("/mailboxes/{mailbox}/receive", summary="Lease messages from a mailbox")
async def receive(mailbox: str, body: ReceiveIn, node: NodeDep, caller: CallerDep) -> list[DeliveryOut]:
    box = own_mailbox(caller, mailbox)
    got: list[Delivery] = await node.governor.run(
        caller,
        "bus_receive",
        {"mailbox": box, **body.model_dump(mode="json")},
        lambda: node.bus.receive(box, body.limit, body.wait_seconds, body.lease_seconds),
    )
    return [DeliveryOut(attempt=d.attempt, envelope=_out(d.envelope)) for d in got]


@router.post("/mailboxes/{mailbox}/ack", summary="Settle received messages for good")
async def ack(mailbox: str, body: AckIn, node: NodeDep, caller: CallerDep) -> dict[str, int]:
    box = own_mailbox(caller, mailbox)
    settled = await node.governor.run(
        caller, "bus_ack", {"mailbox": box, "ids": body.ids}, lambda: node.bus.ack(box, body.ids)
    )
    return {"settled": settled}


@router.post("/mailboxes/{mailbox}/nack", summary="Give received messages back for redelivery")
async def nack(mailbox: str, body: NackIn, node: NodeDep, caller: CallerDep) -> dict[str, int]:
    box = own_mailbox(caller, mailbox)
    released = await node.governor.run(
        caller,
        "bus_nack",
        {"mailbox": box, **body.model_dump(mode="json")},
        lambda: node.bus.nack(box, body.ids, body.delay_seconds),
    )
    return {"released": released}


@router.get("/mailboxes", summary="Ready, in-flight and dead counts (the admin sees every mailbox)")
async def mailboxes(node: NodeDep, caller: CallerDep) -> list[MailboxStats]:
    return await node.bus.stats(visible_scope(caller))


@router.get("/subscriptions", summary="Topic subscriptions (the admin sees all)")
async def subscriptions(node: NodeDep, caller: CallerDep) -> list[Subscription]:
    pairs = await node.bus.subscriptions(visible_scope(caller))
    return [Subscription(subscriber=s, pattern=p) for s, p in pairs]


@router.put("/subscriptions", status_code=204, summary="Subscribe the caller's mailbox to a topic pattern")
async def subscribe(body: SubscriptionIn, node: NodeDep, caller: CallerDep) -> None:
    box = sender_for(caller, body.subscriber)
    await node.governor.run(
        caller,
        "bus_subscribe",
        {"pattern": body.pattern, "subscriber": box},
        lambda: node.bus.subscribe(box, body.pattern),
    )


@router.delete("/subscriptions", status_code=204, summary="Remove one of the caller's subscriptions")
async def unsubscribe(
    pattern: str,
    node: NodeDep,
    caller: CallerDep,
    subscriber: Annotated[str | None, Query(max_length=128, description="Admin: another mailbox.")] = None,
) -> None:
    box = sender_for(caller, subscriber)
    removed = await node.governor.run(
        caller,
        "bus_unsubscribe",
        {"pattern": pattern, "subscriber": box},
        lambda: node.bus.unsubscribe(box, pattern),
    )
    if not removed:
        raise NotFound(f"{box} has no subscription {pattern!r}")
