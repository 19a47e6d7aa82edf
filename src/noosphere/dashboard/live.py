"""What streams to an open dashboard: live panels (server-sent events carrying re-rendered HTML,
which htmx swaps in) for the overview, the approvals queue and the pool; and the chat page's
answer, token by token, from any model of the pool."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from typing import Any

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse

from noosphere.dashboard import views
from noosphere.dashboard.access import PersonDep, Refused, person
from noosphere.dashboard.render import fragment
from noosphere.errors import NoosphereError
from noosphere.pool.protocol import Chunk, Failed, JobRequest
from noosphere.server.deps import gateway_of, node_of
from noosphere.server.openai_wire import ChatCompletionRequest

router = APIRouter(include_in_schema=False)
live = APIRouter(prefix="/ui", include_in_schema=False, dependencies=[Depends(person)])

EVERY_SECONDS = {"overview": 2.0, "approvals": 1.0, "pool": 2.0}
KEEPALIVE_SECONDS = 15.0
STATIC = {  # vendored from the npm registry (docs/dashboard.md says which versions)
    "htmx.min.js": "text/javascript",
    "sse.min.js": "text/javascript",
    "uPlot.iife.min.js": "text/javascript",
    "uPlot.min.css": "text/css",
    "dashboard.css": "text/css",
    "dashboard.js": "text/javascript",
}


@router.get("/ui/static/{name}")
async def static(name: str) -> Response:
    kind = STATIC.get(name)
    if kind is None:
        raise Refused(404, "not_found", f"no dashboard file {name!r}")
    data = resources.files("noosphere.dashboard").joinpath("static", name).read_bytes()
    return Response(data, media_type=kind, headers={"Cache-Control": "public, max-age=3600"})


def _event(name: str, html: str) -> bytes:
    lines = "".join(f"data: {line}\n" for line in html.splitlines() or [""])
    return f"event: {name}\n{lines}\n".encode()


async def _panel(request: Request, who: Any, topic: str) -> str:
    app = request.app
    if topic == "overview":
        return fragment("_overview_live.html", view=views.overview(app, who.is_admin))
    if topic == "approvals":
        data = await views.approvals(node_of(app), who)
        return fragment("_approvals_pending.html", csrf=request.state.session_csrf, **data)
    data = await views.pool(app, 7.0)
    return fragment("_pool_workers.html", report=data["report"])


async def _stream(request: Request, render: Callable[[], Awaitable[str]], topic: str) -> AsyncIterator[bytes]:
    """The panel whenever it changes (checked every few seconds), until the page goes away."""
    shown: str | None = None
    quiet = 0.0
    while not await request.is_disconnected():
        html: str | None
        try:
            html = await render()
        except NoosphereError:  # the node is stopping, or its store is away: say nothing new
            html = shown
        if html is not None and html != shown:
            shown, quiet = html, 0.0
            yield _event(topic, html)
        elif quiet >= KEEPALIVE_SECONDS:
            quiet = 0.0
            yield b": keepalive\n\n"
        await anyio.sleep(EVERY_SECONDS[topic])
        quiet += EVERY_SECONDS[topic]


@live.get("/live/{topic}")
async def panel(request: Request, topic: str, who: PersonDep) -> StreamingResponse:
    if topic not in EVERY_SECONDS:
        raise Refused(404, "not_found", f"no live panel {topic!r}")
    if topic == "pool" and not who.is_admin:
        raise Refused(403, "permission_denied", "the pool panel is for the admin")
    session = request.state.session
    request.state.session_csrf = None if session is None else session.csrf
    return StreamingResponse(
        _stream(request, lambda: _panel(request, who, topic), topic),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


CHAT_MAX_TOKENS = 512  # the chat page's answers, unless it asks for another length


async def _answer(request: Request, who: Any, job: JobRequest) -> AsyncIterator[bytes]:
    gateway = gateway_of(request.app)
    try:
        async with gateway.run(who, job, bulk=True) as running:
            event = await gateway.first_event(running)
            while isinstance(event, Chunk):
                if event.content:
                    yield f"data: {json.dumps({'text': event.content})}\n\n".encode()
                event = await running.events.get()
            if isinstance(event, Failed):
                yield f"data: {json.dumps({'error': event.message or event.code})}\n\n".encode()
                return
            prompt, completion = gateway.usage(running)
        done = {"done": True, "prompt_tokens": prompt, "completion_tokens": completion}
        yield f"data: {json.dumps(done)}\n\n".encode()
    except NoosphereError as exc:
        yield f"data: {json.dumps({'error': exc.message})}\n\n".encode()


@live.post("/chat")
async def chat(request: Request, body: ChatCompletionRequest, who: PersonDep) -> StreamingResponse:
    """The chat page's turn, validated as ``POST /v1/chat/completions`` validates one."""
    job = body.to_job()
    if job.max_tokens is None:
        job = job.model_copy(update={"max_tokens": CHAT_MAX_TOKENS})
    gateway_of(request.app).resolve(job.model)  # an unknown model is an error now, not mid-stream
    return StreamingResponse(
        _answer(request, who, job),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


__all__ = ["live", "router"]
