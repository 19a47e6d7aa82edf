"""A small OpenAI-compatible server for tests whose answers take time: a streamed completion
sends ``max_tokens`` (default 20) one-word chunks ``delay`` seconds apart. When the request offers
a ``delegate`` tool and holds no tool result yet, the answer is a call of it with
``delegate_args`` (so an agent's plan can delegate). Served by uvicorn in a thread."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from tests.integration.conftest import free_port


def _event(body: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def _chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    head = {"id": "chatcmpl-slow", "object": "chat.completion.chunk", "created": 0, "model": "slow"}
    return _event({**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


@dataclass
class SlowUpstream:
    delay: float = 0.05
    delegate_args: dict[str, Any] = field(default_factory=dict)
    url: str = ""
    requests: int = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["path"].endswith("/models"):
            await _answer(send, b"application/json", json.dumps({"object": "list", "data": []}).encode())
            return
        self.requests += 1
        body = json.loads(raw or b"{}")
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        await send({"type": "http.response.body", "body": _chunk({"role": "assistant"}), "more_body": True})
        tools = {t.get("function", {}).get("name") for t in body.get("tools") or []}
        answered = any(m.get("role") == "tool" for m in body.get("messages", []))
        if "delegate" in tools and not answered:
            call = {"index": 0, "id": "call_1", "type": "function"}
            call["function"] = {"name": "delegate", "arguments": json.dumps(self.delegate_args)}
            await send(
                {"type": "http.response.body", "body": _chunk({"tool_calls": [call]}), "more_body": True}
            )
            finish, produced = "tool_calls", 1
        else:
            produced = int(body.get("max_tokens") or 20)
            for i in range(produced):
                await asyncio.sleep(self.delay)
                piece = _chunk({"content": f" t{i}"})
                await send({"type": "http.response.body", "body": piece, "more_body": True})
            finish = "stop"
        usage = {"prompt_tokens": 5, "completion_tokens": produced, "total_tokens": produced + 5}
        tail = _chunk({}, finish) + _event({"id": "x", "choices": [], "usage": usage}) + b"data: [DONE]\n\n"
        await send({"type": "http.response.body", "body": tail})


async def _answer(send: Any, kind: bytes, payload: bytes) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", kind)]})
    await send({"type": "http.response.body", "body": payload})


@contextmanager
def slow_upstream(delay: float = 0.05, **delegate_args: Any) -> Iterator[SlowUpstream]:
    upstream = SlowUpstream(delay, delegate_args)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(upstream, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the slow upstream did not start"
        time.sleep(0.02)
    upstream.url = f"http://127.0.0.1:{port}/v1"
    try:
        yield upstream
    finally:
        server.should_exit = True
        thread.join(timeout=10)
