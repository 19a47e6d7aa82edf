"""A backend that forwards jobs to an OpenAI-compatible server (Ollama, llama.cpp server, vLLM,
OpenAI) and turns its SSE stream into protocol frames."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from noosphere.pool.backends.base import BackendError
from noosphere.pool.protocol import Chunk, Done, JobRequest, ModelOffer, ToolCallDelta, Usage

_FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls", "function_call": "tool_calls"}


class OpenAICompatibleBackend:
    def __init__(
        self,
        base_url: str,
        models: list[ModelOffer],
        api_key: str | None = None,
        timeout: float = 600.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers=headers,
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=10.0),
        )
        self._models = models

    def offers(self) -> list[ModelOffer]:
        return list(self._models)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def stream(self, job_id: str, request: JobRequest) -> AsyncIterator[Chunk | Done]:
        body: dict[str, Any] = request.model_dump(exclude_none=True)
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        finish = "stop"
        usage = Usage()
        try:
            async with self._client.stream("POST", "/chat/completions", json=body) as response:
                if response.status_code != 200:
                    text = (await response.aread()).decode("utf-8", "replace")[:300]
                    raise BackendError(f"upstream answered {response.status_code}: {text}", "upstream_error")
                async for line in response.aiter_lines():
                    # Read to the end of the body (not just to [DONE]) so the connection is
                    # returned to the pool instead of being closed and reopened next time.
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        continue
                    try:
                        event = json.loads(data)
                    except json.JSONDecodeError as exc:
                        raise BackendError("upstream sent malformed JSON", "upstream_error") from exc
                    if "error" in event:
                        raise BackendError(f"upstream error: {event['error']}", "upstream_error")
                    if event.get("usage"):
                        usage = Usage(
                            prompt_tokens=event["usage"].get("prompt_tokens") or 0,
                            completion_tokens=event["usage"].get("completion_tokens") or 0,
                        )
                    for choice in event.get("choices") or []:
                        for chunk in _chunks(job_id, choice.get("delta") or {}):
                            yield chunk
                        if choice.get("finish_reason"):
                            finish = _FINISH.get(choice["finish_reason"], "stop")
        except httpx.HTTPError as exc:
            raise BackendError(f"upstream unreachable: {exc}", "upstream_unreachable") from exc
        yield Done(job_id=job_id, finish_reason=finish, usage=usage)


def _chunks(job_id: str, delta: dict[str, Any]) -> list[Chunk]:
    out = []
    if delta.get("content"):
        out.append(Chunk(job_id=job_id, content=delta["content"]))
    for call in delta.get("tool_calls") or []:
        function = call.get("function") or {}
        out.append(
            Chunk(
                job_id=job_id,
                tool_call=ToolCallDelta(
                    index=call.get("index", 0),
                    id=call.get("id"),
                    name=function.get("name"),
                    arguments=function.get("arguments") or "",
                ),
            )
        )
    return out
