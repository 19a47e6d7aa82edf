"""OpenAI wire shapes for the gateway, kept apart from domain types, with converters.

Streaming follows what the official client expects: ``role`` only in the first chunk; a tool
call's ``id``, ``type`` and function ``name`` only in its first delta; an integer ``index`` on
every tool-call delta (distinct per parallel call); a final chunk with ``finish_reason``; with
``stream_options.include_usage`` one more chunk with empty ``choices`` and ``usage``; then
``data: [DONE]``. No ``event:`` lines.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from noosphere.errors import InvalidRequest
from noosphere.ids import unique_hex
from noosphere.pool.answer import Answer
from noosphere.pool.protocol import Chunk, JobRequest


class WireMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """The fields the gateway honours; other OpenAI fields are accepted and ignored."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    messages: list[WireMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    stop: str | list[str] | None = None
    n: int | None = None
    seed: int | None = None
    metadata: dict[str, str] | None = None

    @field_validator("stop")
    @classmethod
    def _stop(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value

    def to_job(self) -> JobRequest:
        if self.n not in (None, 1):
            raise InvalidRequest("n must be 1: the gateway returns one choice per request")
        stop = [self.stop] if isinstance(self.stop, str) else self.stop
        return JobRequest(
            model=self.model,
            messages=[m.model_dump(exclude_none=True) for m in self.messages],
            tools=self.tools,
            tool_choice=self.tool_choice,
            max_tokens=self.max_completion_tokens or self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            stop=stop,
            seed=self.seed,
        )

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


MAX_EMBEDDING_INPUTS = 2048  # texts in one embeddings request, as OpenAI's API allows


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str
    input: str | Annotated[list[str], Field(min_length=1, max_length=MAX_EMBEDDING_INPUTS)] = Field(
        description=f"Text or up to {MAX_EMBEDDING_INPUTS} texts (token arrays are not supported)."
    )
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None


@dataclass
class Transcript:
    """What a job produced, assembled from its chunks, and the stream's per-call bookkeeping."""

    model: str
    id: str = field(default_factory=lambda: "chatcmpl-" + unique_hex())
    created: int = field(default_factory=lambda: int(time.time()))
    answer: Answer = field(default_factory=Answer)

    def delta(self, chunk: Chunk) -> dict[str, Any]:
        """Record ``chunk`` and return its OpenAI delta."""
        started = self.answer.add(chunk)
        part = chunk.tool_call
        if part is None:
            return {"content": chunk.content or ""}
        if started:
            call = self.answer.calls[part.index]
            first = {
                "index": part.index,
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": part.arguments},
            }
            return {"tool_calls": [first]}
        return {"tool_calls": [{"index": part.index, "function": {"arguments": part.arguments}}]}

    def chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    def usage_chunk(self, usage: dict[str, int]) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage,
        }

    def completion(self, finish: str, usage: dict[str, int]) -> dict[str, Any]:
        text, calls = self.answer.text, self.answer.tool_calls()
        message: dict[str, Any] = {"role": "assistant", "content": text if not calls else (text or None)}
        if calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in calls
            ]
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": usage,
        }


def sse(payload: dict[str, Any] | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else orjson.dumps(payload)
    return b"data: " + data + b"\n\n"


def usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
