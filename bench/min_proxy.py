"""The least a Python streaming proxy can do, as a floor for the gateway benchmark: raw ASGI on
uvicorn, one aiohttp session to the upstream, each SSE chunk parsed and re-encoded with its model
name set (as any proxy that routes by model does). No authentication, limits, scheduling or
accounting. Run: ``python -m bench.min_proxy UPSTREAM_CHAT_URL PORT``."""

from __future__ import annotations

import sys
from typing import Any

import aiohttp
import orjson
import uvicorn

from bench.mock_openai import read_body


class MinimalProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        request = orjson.loads(await read_body(receive))
        assert self.session is not None
        async with self.session.post(self.upstream, json=request) as answer:
            headers = [(b"content-type", b"text/event-stream")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            async for line in answer.content:
                if line.startswith(b"data: {"):
                    chunk = orjson.loads(line[6:])
                    chunk["model"] = request.get("model")
                    line = b"data: " + orjson.dumps(chunk) + b"\n\n"
                await send({"type": "http.response.body", "body": line, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.session = aiohttp.ClientSession()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.session is not None:
                    await self.session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


if __name__ == "__main__":
    uvicorn.run(MinimalProxy(sys.argv[1]), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
