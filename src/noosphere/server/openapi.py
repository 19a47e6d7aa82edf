"""The OpenAPI description, completed: ``/v1/chat/completions`` (served in front of FastAPI's
routing, so FastAPI cannot see it) and the error answers every route can give, all in the one
shape ``{"error": {"code", "message", "type"}}``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from noosphere.auth.permissions import Role, grant
from noosphere.server.chat_completions import PATH as CHAT_PATH
from noosphere.server.openai_wire import ChatCompletionRequest

_SCHEMAS = "#/components/schemas/"


class ErrorDetail(BaseModel):
    code: str
    message: str
    type: str
    approval_id: str | None = None  # approval_required: the approval a person decides
    expires_at: str | None = None  # approval_required: until when it waits for them


class ErrorBody(BaseModel):
    error: ErrorDetail


_ERRORS = {
    "400": "Invalid request (code `invalid_request`, …)",
    "401": "No valid bearer token (`unauthenticated`)",
    "403": "The caller may not do this (`permission_denied`, `budget_exhausted`, …), or a person "
    "must approve it first (`approval_required`, with `approval_id`: repeat the call once approved)",
    "404": "Not found (`not_found`, `model_not_found`)",
    "409": "In conflict with what is stored (`conflict`: exists already, decided already, …)",
    "413": "The body is over `server.max_body_bytes` (`payload_too_large`)",
    "422": "A field is invalid (`invalid_request`, naming the field)",
    "429": "A rate limit, or the queue is full (`rate_limited`); see Retry-After",
    "503": "Starting, stopping, or storage away (`unavailable`, `storage_unavailable`); see Retry-After",
}


# Answers only some routes give.
_ROUTE_ERRORS = {
    "POST /api/v1/bus/requests": {"504": "No response came within the timeout (`timeout`)"},
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"{_SCHEMAS}ErrorBody"}}},
    }


def _chat_operation() -> dict[str, Any]:
    return {
        "tags": ["openai"],
        "summary": "Chat completion through the pool (OpenAI-compatible; streamed with `stream: true`)",
        "operationId": "chat_completions_v1_chat_completions_post",
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"{_SCHEMAS}ChatCompletionRequest"}}},
        },
        "responses": {
            "200": {
                "description": "The completion (JSON), or its chunks as server-sent events",
                "content": {"application/json": {}, "text/event-stream": {}},
            },
            "404": _error("No worker or upstream serves the model (`model_not_found`)"),
            "429": _error("A rate limit or the queue is full (`rate_limited`); see Retry-After"),
            "502": _error("The worker failed before answering (`worker_failed`, …)"),
        },
    }


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        body = ErrorBody.model_json_schema(ref_template=f"{_SCHEMAS}{{model}}")
        schemas.update(body.pop("$defs", {}))
        schemas["ErrorBody"] = body
        chat = ChatCompletionRequest.model_json_schema(ref_template=f"{_SCHEMAS}{{model}}")
        schemas.update(chat.pop("$defs", {}))
        schemas["ChatCompletionRequest"] = chat
        spec["paths"][CHAT_PATH] = {"post": _chat_operation()}
        for path, operations in spec["paths"].items():
            for method, operation in operations.items():
                if Role.ANYONE in grant("http", f"{method.upper()} {path}").roles:
                    continue
                responses = operation.setdefault("responses", {})
                for status, description in _ERRORS.items():
                    responses.setdefault(status, _error(description))
                for status, description in _ROUTE_ERRORS.get(f"{method.upper()} {path}", {}).items():
                    responses.setdefault(status, _error(description))
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


__all__ = ["install_openapi"]
