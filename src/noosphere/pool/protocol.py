"""The worker protocol, version 1: JSON text frames over the WebSocket at ``/ws/worker``.

    worker → node                         node → worker
    hello     (token, models, capacity)   accepted  (worker id, heartbeat interval)
    heartbeat (active jobs)               rejected  (code, message; then close)
    chunk     (job id, one delta)         job       (job id, model, chat request)
    done      (job id, finish, usage)     cancel    (job id)
    failed    (job id, code, message)

A worker says ``hello`` first and waits for ``accepted``. It heartbeats every
``heartbeat_interval`` seconds; after three missed intervals the node drops it: its unstarted
jobs go back to the queue, started ones end with an explicit error. For a job it streams
``chunk`` frames — each carries one token's delta (or ``tokens`` of them that arrived together),
either text or one tool-call fragment — and
ends with ``done`` or ``failed``. After ``cancel`` it stops generating and sends nothing more for
that job. Frames that do not parse are answered with a protocol error and the worker is dropped.
Documented for implementers in docs/worker-protocol.md.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

PROTOCOL_VERSION = 1


class _Frame(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelOffer(_Frame):
    name: str = Field(min_length=1, max_length=200)
    context_length: int = Field(4096, ge=1)


class Hello(_Frame):
    type: Literal["hello"] = "hello"
    protocol: int = PROTOCOL_VERSION
    token: str
    name: str = Field(min_length=1, max_length=100)
    models: list[ModelOffer] = Field(min_length=1)
    capacity: int = Field(1, ge=1, le=256, description="Jobs the worker runs at once.")


class Heartbeat(_Frame):
    type: Literal["heartbeat"] = "heartbeat"
    active_jobs: int = 0


class ToolCallDelta(_Frame):
    index: int = Field(ge=0)
    id: str | None = None
    name: str | None = None
    arguments: str = ""


class Chunk(_Frame):
    type: Literal["chunk"] = "chunk"
    job_id: str
    content: str | None = None
    tool_call: ToolCallDelta | None = None
    tokens: int = Field(1, ge=1, le=1 << 20, description="Tokens this delta carries.")

    @model_validator(mode="after")
    def _tokens_fit(self) -> Chunk:
        # Every token carries at least one byte: a worker cannot charge a user's fairness counter
        # for more tokens than it sent.
        sent = len((self.content or "").encode())
        if self.tool_call is not None:
            sent += len((self.tool_call.name or "").encode()) + len(self.tool_call.arguments.encode())
        if self.tokens > max(1, sent):
            raise ValueError(f"a chunk of {sent} bytes cannot carry {self.tokens} tokens")
        return self


class Usage(_Frame):
    prompt_tokens: int = Field(0, ge=0)
    completion_tokens: int = Field(0, ge=0)


class Done(_Frame):
    type: Literal["done"] = "done"
    job_id: str
    finish_reason: Literal["stop", "length", "tool_calls"] = "stop"
    usage: Usage = Field(default_factory=Usage)


class Failed(_Frame):
    type: Literal["failed"] = "failed"
    job_id: str
    code: str = "worker_error"
    message: str = ""


class Accepted(_Frame):
    type: Literal["accepted"] = "accepted"
    protocol: int = PROTOCOL_VERSION
    worker_id: str
    heartbeat_interval: float


class Rejected(_Frame):
    type: Literal["rejected"] = "rejected"
    code: str
    message: str


class JobRequest(_Frame):
    """What a worker needs to run one chat completion (OpenAI chat shapes, already validated)."""

    model: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    seed: int | None = None


class Job(_Frame):
    type: Literal["job"] = "job"
    job_id: str
    request: JobRequest


class Cancel(_Frame):
    type: Literal["cancel"] = "cancel"
    job_id: str


WorkerFrame = Annotated[Hello | Heartbeat | Chunk | Done | Failed, Field(discriminator="type")]
NodeFrame = Annotated[Accepted | Rejected | Job | Cancel, Field(discriminator="type")]
worker_frames: TypeAdapter[WorkerFrame] = TypeAdapter(WorkerFrame)
node_frames: TypeAdapter[NodeFrame] = TypeAdapter(NodeFrame)
