"""OpenAI-compatible API: ``/v1/chat/completions``, ``/v1/models``, ``/v1/embeddings``.

Thin: parse the wire request, run it through the gateway, write JSON or SSE. A failure before the
first token is an HTTP error with a status (404, 429, 503 with Retry-After); a failure after it is
an in-stream error object, never a silently truncated answer.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator, Awaitable
from contextlib import AsyncExitStack
from typing import Annotated, Any, TypeVar

import anyio
import numpy as np
from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from noosphere.errors import ModelNotFound, NoosphereError, Unavailable, WorkerFailed
from noosphere.pool.gateway import Gateway
from noosphere.pool.jobs import ChatJob, JobEvent
from noosphere.pool.protocol import Chunk, Failed
from noosphere.server.deps import NodeDep, PrincipalDep
from noosphere.server.errors import error_body
from noosphere.server.openai_wire import ChatCompletionRequest, EmbeddingRequest, Transcript, sse, usage

router = APIRouter(prefix="/v1", tags=["openai"])
T = TypeVar("T")
CONVERSATION_HEADER = "X-Conversation-Id"


def get_gateway(request: Request) -> Gateway:
    gateway: Gateway | None = getattr(request.app.state, "gateway", None)
    if gateway is None:
        raise Unavailable("the gateway is starting or stopping")
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


@router.get("/models", summary="Models with live capacity (workers or upstreams), aliases included")
async def list_models(gateway: GatewayDep, _: PrincipalDep) -> dict[str, Any]:
    data = []
    for model in gateway.models():
        entry = {
            "id": model.id,
            "object": "model",
            "created": 0,
            "owned_by": "noosphere",
            "workers": model.workers,
            "upstreams": model.upstreams,
            "slots": model.slots,
            "free_slots": model.free_slots,
            "context_length": model.context_length,
        }
        data.append(entry)
        data.extend({**entry, "id": alias, "alias_of": model.id} for alias in model.aliases)
    return {"object": "list", "data": data}


@router.post("/embeddings", summary="Embeddings from the node's embedder")
async def embeddings(
    body: EmbeddingRequest, node: NodeDep, gateway: GatewayDep, _: PrincipalDep
) -> dict[str, Any]:
    embedder = node.memory.embedder
    names = {embedder.model_id, embedder.model_id.rsplit("/", 1)[-1], "default"}
    if body.model not in names:
        raise ModelNotFound(
            f"this node embeds with {embedder.model_id!r}; model {body.model!r} is not served"
        )
    texts = [body.input] if isinstance(body.input, str) else body.input
    vectors = await node.memory.embed(texts)
    data = []
    for i, vector in enumerate(vectors):
        value: Any = (
            base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
            if body.encoding_format == "base64"
            else vector.tolist()
        )
        data.append({"object": "embedding", "index": i, "embedding": value})
    tokens = sum(gateway.counter.text(t) for t in texts)
    return {
        "object": "list",
        "data": data,
        "model": embedder.model_id,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


@router.post("/chat/completions", summary="Chat completion, streamed (SSE) or whole", response_model=None)
async def chat_completions(
    body: ChatCompletionRequest,
    request: Request,
    gateway: GatewayDep,
    principal: PrincipalDep,
    conversation_header: Annotated[str | None, Header(alias=CONVERSATION_HEADER)] = None,
) -> Response:
    conversation = (
        conversation_header or (body.metadata or {}).get("conversation_id") or "conv_" + uuid.uuid4().hex
    )
    headers = {CONVERSATION_HEADER: conversation}
    job_request = body.to_job()
    transcript = Transcript(model=body.model)
    stack = AsyncExitStack()
    job = await stack.enter_async_context(gateway.run(principal, job_request, conversation))
    if not body.stream:
        async with stack:
            result = await _unless_disconnected(request, _collect(job, transcript, gateway))
        return JSONResponse(result, headers=headers)
    try:
        first = await _unless_disconnected(request, gateway.first_event(job))
        if isinstance(first, Failed):
            raise _failure(first)
    except BaseException:
        await stack.aclose()
        raise
    stream = _stream(stack, job, first, transcript, body.include_usage, gateway)
    return StreamingResponse(stream, media_type="text/event-stream", headers=headers)


class ClientGone(NoosphereError):
    code = "client_disconnected"
    status = 499


async def _unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await ``work``, abandoning it if the client disconnects meanwhile."""
    result: list[T] = []
    failure: list[BaseException] = []
    async with anyio.create_task_group() as group:

        async def run() -> None:
            try:
                result.append(await work)
            except Exception as exc:  # noqa: BLE001 - re-raised below, outside the task group
                failure.append(exc)
            group.cancel_scope.cancel()

        async def watch() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                continue
            group.cancel_scope.cancel()

        group.start_soon(run)
        group.start_soon(watch)
    if failure:
        raise failure[0]
    if not result:
        raise ClientGone("the client disconnected")
    return result[0]


def _failure(event: Failed) -> NoosphereError:
    error = WorkerFailed(f"{event.code}: {event.message}" if event.message else event.code)
    error.code = event.code
    return error


def _usage(gateway: Gateway, job: ChatJob) -> dict[str, int]:
    return usage(*gateway.usage(job))


async def _collect(job: ChatJob, transcript: Transcript, gateway: Gateway) -> dict[str, Any]:
    event = await gateway.first_event(job)
    while isinstance(event, Chunk):
        transcript.delta(event)
        event = await job.events.get()
    if isinstance(event, Failed):
        raise _failure(event)
    return transcript.completion(event.finish_reason, _usage(gateway, job))


async def _stream(
    stack: AsyncExitStack,
    job: ChatJob,
    first: JobEvent,
    transcript: Transcript,
    include_usage: bool,
    gateway: Gateway,
) -> AsyncIterator[bytes]:
    # Closing the stack (finally) cancels the job if the client left mid-stream. Chunks that are
    # already waiting go out in one write: fewer syscalls and loop turns for fast backends.
    async with stack:
        out = [sse(transcript.chunk({"role": "assistant", "content": ""}))]
        event = first
        while isinstance(event, Chunk):
            out.append(sse(transcript.chunk(transcript.delta(event))))
            if job.events.empty():
                yield b"".join(out)
                out = []
                event = await job.events.get()
            else:
                event = job.events.get_nowait()
        if isinstance(event, Failed):
            out.append(sse(error_body(event.code, event.message or "the worker failed mid-stream")))
            yield b"".join(out)
            return
        out.append(sse(transcript.chunk({}, event.finish_reason)))
        if include_usage:
            out.append(sse(transcript.usage_chunk(_usage(gateway, job))))
        out.append(sse("[DONE]"))
        yield b"".join(out)
