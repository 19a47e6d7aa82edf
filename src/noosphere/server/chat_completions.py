"""``POST /v1/chat/completions`` as a bare ASGI endpoint in front of the FastAPI app.

This is the node's hottest path, so it skips FastAPI's per-request machinery (dependency solving,
response classes, anyio task groups), which cost several times the gateway's own work on a fast
backend. It authenticates like every other route, validates the body with the same pydantic model
and answers errors in the same JSON shape. Every other request passes through to the app.

A failure before the first token is an HTTP error with a status (404, 429, 503 with Retry-After); a
failure after it is an in-stream error object, never a silently truncated answer. A client that
disconnects cancels its job on the worker.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from noosphere.auth.names import SECRET_HEADER
from noosphere.auth.permissions import authorize
from noosphere.errors import InvalidRequest, NoosphereError, WorkerFailed
from noosphere.ids import unique_hex
from noosphere.memory.model import THREAD_ID_MAX
from noosphere.pool.gateway import Gateway
from noosphere.pool.jobs import ChatJob
from noosphere.pool.protocol import Chunk, Failed
from noosphere.server.deps import bearer_token, gateway_of, node_of
from noosphere.server.errors import error_body, error_headers, send_json, validation_message
from noosphere.server.openai_wire import ChatCompletionRequest, Transcript, sse, usage

logger = logging.getLogger(__name__)

PATH = "/v1/chat/completions"
CONVERSATION_HEADER = "X-Conversation-Id"
_GONE = "client_disconnected"


class ChatCompletions:
    """ASGI middleware: serves ``POST /v1/chat/completions``, passes everything else on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        reply = _Reply(send)
        if scope["method"] != "POST":
            await reply.error(405, "method_not_allowed", f"{PATH} takes POST", {"Allow": "POST"})
            return
        try:
            await _serve(scope, receive, reply)
        except NoosphereError as exc:
            await reply.error(exc.status, exc.code, exc.message, error_headers(exc))
        except Exception:
            logger.exception("chat completion failed")
            await reply.error(500, "internal_error", "internal error; see the node log")


class _Reply:
    """The response side: whole JSON, or SSE once ``start`` is sent; errors fit either state."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.started = False
        self.done = False

    async def start(self, status: int, content_type: bytes, headers: dict[str, str]) -> None:
        raw = [(b"content-type", content_type)] + [
            (k.lower().encode(), v.encode()) for k, v in headers.items()
        ]
        await self.send({"type": "http.response.start", "status": status, "headers": raw})
        self.started = True

    async def body(self, data: bytes, more: bool = True) -> None:
        await self.send({"type": "http.response.body", "body": data, "more_body": more})
        self.done = not more

    async def json(self, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
        await send_json(self.send, status, payload, headers)
        self.started = self.done = True

    async def error(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        if self.done:
            return
        if self.started:  # mid-stream: an error object the client's SSE reader raises
            await self.body(sse(error_body(code, message)), more=False)
        else:
            await self.json(status, error_body(code, message), headers or {})


async def _serve(scope: Scope, receive: Receive, reply: _Reply) -> None:
    node, gateway = node_of(scope["app"]), gateway_of(scope["app"])
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    principal = await node.authenticate(
        bearer_token(headers.get("authorization")), headers.get(SECRET_HEADER)
    )
    authorize("http", f"POST {PATH}", principal)
    raw = await _read_body(receive)  # within the node's size limit (``BodyLimit`` in front)
    try:
        body = ChatCompletionRequest.model_validate_json(raw)
    except ValidationError as exc:
        error = InvalidRequest(validation_message(exc.errors()))
        error.status = 422
        raise error from None
    conversation = _conversation_id(
        headers.get(CONVERSATION_HEADER.lower()) or (body.metadata or {}).get("conversation_id")
    )
    response_headers = {CONVERSATION_HEADER: conversation}
    transcript = Transcript(model=body.model)
    async with gateway.run(principal, body.to_job(), conversation, bulk=True) as job:
        watcher = asyncio.ensure_future(_watch_disconnect(receive, job))
        try:
            if body.stream:
                await _stream(reply, job, transcript, body.include_usage, gateway, response_headers)
            else:
                await _whole(reply, job, transcript, gateway, response_headers)
        finally:
            watcher.cancel()


def _conversation_id(given: str | None) -> str:
    """The caller's conversation id, checked here so that no later write can trip over it."""
    if given is None or given == "":
        return "conv_" + unique_hex()
    if len(given) > THREAD_ID_MAX or not given.isprintable():
        raise InvalidRequest(
            f"a conversation id ({CONVERSATION_HEADER} or metadata.conversation_id) is 1-{THREAD_ID_MAX} "
            "printable characters"
        )
    return given


async def _read_body(receive: Receive) -> bytes:
    parts: list[bytes] = []
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone("the client disconnected")
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(parts)


async def _watch_disconnect(receive: Receive, job: ChatJob) -> None:
    """Wake the handler with a ``client_disconnected`` event when the client leaves; leaving the
    gateway's ``run`` then cancels the job on its worker."""
    while (await receive())["type"] != "http.disconnect":
        continue
    job.events.put_nowait(Failed(job_id=job.id, code=_GONE, message="the client disconnected"))


class _ClientGone(NoosphereError):
    code = _GONE
    status = 499


def _failure(event: Failed) -> NoosphereError:
    if event.code == _GONE:
        return _ClientGone(event.message or "the client disconnected")
    error = WorkerFailed(f"{event.code}: {event.message}" if event.message else event.code)
    error.code = event.code
    return error


async def _whole(
    reply: _Reply, job: ChatJob, transcript: Transcript, gateway: Gateway, headers: dict[str, str]
) -> None:
    event = await gateway.first_event(job)
    while isinstance(event, Chunk):
        transcript.delta(event)
        event = await job.events.get()
    if isinstance(event, Failed):
        raise _failure(event)
    completion = transcript.completion(event.finish_reason, usage(*gateway.usage(job)))
    await gateway.settle(job)  # paid for before it is answered
    await reply.json(200, completion, headers)


async def _stream(
    reply: _Reply,
    job: ChatJob,
    transcript: Transcript,
    include_usage: bool,
    gateway: Gateway,
    headers: dict[str, str],
) -> None:
    event = await gateway.first_event(job)
    if isinstance(event, Failed):
        raise _failure(event)
    await reply.start(200, b"text/event-stream", {**headers, "cache-control": "no-cache"})
    # Chunks that are already waiting go out in one write: fewer syscalls and loop turns.
    out = [sse(transcript.chunk({"role": "assistant", "content": ""}))]
    while isinstance(event, Chunk):
        out.append(sse(transcript.chunk(transcript.delta(event))))
        if job.events.empty():
            await reply.body(b"".join(out))
            out = []
            event = await job.events.get()
        else:
            event = job.events.get_nowait()
    if isinstance(event, Failed):
        if event.code != _GONE:
            out.append(sse(error_body(event.code, event.message or "the worker failed mid-stream")))
            await reply.body(b"".join(out), more=False)
        return
    out.append(sse(transcript.chunk({}, event.finish_reason)))
    if include_usage:
        out.append(sse(transcript.usage_chunk(usage(*gateway.usage(job)))))
    out.append(sse("[DONE]"))
    await gateway.settle(job)  # paid for before the answer completes
    await reply.body(b"".join(out), more=False)


__all__ = ["PATH", "ChatCompletions"]
