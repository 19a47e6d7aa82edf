"""What every HTTP request leaves behind: a request id (the caller's ``X-Request-Id`` when it
sends a sane one, else a new one; echoed in the answer and on every log line written while it is
served), one access log line, and its duration in the latency histogram of its route."""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from noosphere.logs import request_id
from noosphere.server.chat_completions import PATH as CHAT_PATH
from noosphere.server.metrics import NodeMetrics

HEADER = b"x-request-id"
_SANE = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
UNMATCHED = "unmatched"  # the route label of paths no route serves (no label per probed path)
OUTSIDE_FASTAPI = frozenset({CHAT_PATH, "/mcp"})  # served by plain ASGI, which names no route

access = logging.getLogger("noosphere.access")


def _route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    path = scope.get("path")
    return path if path in OUTSIDE_FASTAPI else UNMATCHED


class RequestTelemetry:
    def __init__(self, app: ASGIApp, metrics: NodeMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(HEADER)
        rid = given.decode() if given is not None and _SANE.fullmatch(given) else uuid.uuid4().hex
        token = request_id.set(rid)
        status = 500  # what the caller sees when the app fails before answering (the server's own 500)
        started = time.perf_counter()

        async def answer(event: Message) -> None:
            nonlocal status
            if event["type"] == "http.response.start":
                status = event["status"]
                event["headers"] = [*event.get("headers", ()), (HEADER, rid.encode())]
            await send(event)

        try:
            await self.app(scope, receive, answer)
        finally:
            seconds = time.perf_counter() - started
            route, method = _route(scope), scope["method"]
            self.metrics.request(method, route, status, seconds)
            access.info(
                "%s %s %d %.1fms",
                method,
                scope["path"],
                status,
                seconds * 1000,
                extra={
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 2),
                },
            )
            request_id.reset(token)


__all__ = ["HEADER", "RequestTelemetry"]
