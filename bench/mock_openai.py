"""A fast mock OpenAI-compatible server for gateway benchmarks: every chat completion streams
``TOKENS`` one-word chunks at once (or answers whole), with usage. Raw ASGI, no framework, so it
costs as little as possible. Run: ``python -m bench.mock_openai PORT``."""

from __future__ import annotations

import json
import sys
from typing import Any

import uvicorn

TOKENS = 20
_HEAD = {"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 0, "model": "mock"}


def _chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {**_HEAD, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


_STREAM = b"".join(
    [_chunk({"role": "assistant", "content": ""})]
    + [_chunk({"content": f" w{i}"}) for i in range(TOKENS)]
    + [
        _chunk({}, "stop"),
        b"data: "
        + json.dumps(
            {
                **_HEAD,
                "choices": [],
                "usage": {"prompt_tokens": 5, "completion_tokens": TOKENS, "total_tokens": TOKENS + 5},
            }
        ).encode()
        + b"\n\n",
        b"data: [DONE]\n\n",
    ]
)
_WHOLE = json.dumps(
    {
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": 0,
        "model": "mock",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(f" w{i}" for i in range(TOKENS))},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": TOKENS, "total_tokens": TOKENS + 5},
    }
).encode()
_MODELS = json.dumps(
    {"object": "list", "data": [{"id": "mock", "object": "model", "created": 0, "owned_by": "bench"}]}
).encode()


async def read_body(receive: Any) -> bytes:
    """A whole ASGI request body."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = await read_body(receive)
    if scope["path"].endswith("/models"):
        payload, kind = _MODELS, b"application/json"
    elif json.loads(body or b"{}").get("stream"):
        payload, kind = _STREAM, b"text/event-stream"
    else:
        payload, kind = _WHOLE, b"application/json"
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", kind), (b"content-length", str(len(payload)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": payload})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
