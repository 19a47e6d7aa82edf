"""How an agent thinks: one chat completion with tools, through the node's model pool."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from noosphere.auth.principal import Principal
from noosphere.errors import WorkerFailed
from noosphere.pool.answer import Answer
from noosphere.pool.gateway import Gateway
from noosphere.pool.protocol import Chunk, Failed, JobRequest


@dataclass(frozen=True)
class RequestedCall:
    """A tool call the model asked for; ``arguments`` is its raw JSON text."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Reply:
    text: str
    calls: list[RequestedCall] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0


class ChatModel(Protocol):
    async def chat(self, principal: Principal, request: JobRequest) -> Reply: ...


class PoolModel:
    """The agent's model calls go through the gateway like any client's: routed, fair, metered
    and charged to the agent's principal."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def chat(self, principal: Principal, request: JobRequest) -> Reply:
        answer = Answer()
        async with self.gateway.run(principal, request) as job:
            event = await self.gateway.first_event(job)
            while isinstance(event, Chunk):
                answer.add(event)
                event = await job.events.get()
            if isinstance(event, Failed):
                raise WorkerFailed(f"the model failed: {event.code}: {event.message or ''}".rstrip(": "))
            prompt, completion = self.gateway.usage(job)
        calls = [RequestedCall(c.id, c.name, c.arguments or "{}") for c in answer.tool_calls()]
        return Reply(answer.text, calls, prompt, completion)


__all__ = ["ChatModel", "PoolModel", "Reply", "RequestedCall"]
