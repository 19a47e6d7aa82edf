"""Errors as JSON: ``{"error": {"code", "message"}}`` with the status the code maps to."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Send

from noosphere.errors import NoosphereError

logger = logging.getLogger(__name__)


def error_body(code: str, message: str, **details: str) -> dict[str, dict[str, str]]:
    # "type" mirrors "code" so OpenAI clients, which read error.type, understand it too.
    return {"error": {"code": code, "message": message, "type": code, **details}}


async def send_json(
    send: Send, status: int, payload: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> None:
    """A whole JSON response over raw ASGI, for the pieces that answer in front of FastAPI."""
    data = orjson.dumps(payload)
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})


def error_headers(exc: NoosphereError) -> dict[str, str]:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    return headers


def validation_message(errors: Sequence[Mapping[str, Any]]) -> str:
    """One line naming each invalid field (a request body's own fields, without "body.")."""
    parts = []
    for item in errors:
        where = ".".join(str(p) for p in item.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {item.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """The methods the API documents for ``path`` (its OpenAPI path templates matched)."""
    methods: set[str] = set()
    for template, operations in app.openapi()["paths"].items():
        if re.fullmatch(re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template)), path):
            methods.update(m.upper() for m in operations)
    return sorted(methods)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(NoosphereError)
    async def domain_error(_: Request, exc: NoosphereError) -> JSONResponse:
        body = error_body(exc.code, exc.message, **exc.details)
        return JSONResponse(body, exc.status, headers=error_headers(exc))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(error_body("invalid_request", validation_message(exc.errors())), 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # every method of the path (Starlette names only one route's)
            headers["Allow"] = ", ".join(allowed_methods(app, request.url.path))
        return JSONResponse(error_body(code, str(exc.detail)), exc.status_code, headers=headers)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error", exc_info=exc)
        return JSONResponse(error_body("internal_error", "internal error; see the node log"), 500)
