"""A backend that forwards jobs to an OpenAI-compatible server (Ollama, llama.cpp server, vLLM,
OpenAI) and turns its SSE stream into protocol frames."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
import orjson

from noosphere.pool.backends.base import BackendError
from noosphere.pool.protocol import Chunk, Done, JobRequest, ModelOffer, ToolCallDelta, Usage

_LINE_LIMIT = 1 << 24  # the longest SSE line accepted from an upstream (a big tool call)
_JSON = {"Content-Type": "application/json"}
_FINISH: dict[str, Literal["stop", "length", "tool_calls"]] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
}


class OpenAICompatibleBackend:
    """Upstream calls go through aiohttp rather than httpx: on the gateway's hot path its C HTTP
    parser and connection pool cost about a fifth of httpx's CPU per streamed request."""

    def __init__(
        self, base_url: str, models: list[ModelOffer], api_key: str | None = None, timeout: float = 600.0
    ) -> None:
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # No limit on a whole answer (a long generation is not a fault); ``timeout`` is the longest
        # silence between two reads.
        self._timeout = aiohttp.ClientTimeout(total=None, connect=10.0, sock_read=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._models = models

    def offers(self) -> list[ModelOffer]:
        return list(self._models)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        # Created on first use: a session belongs to the event loop that is running it.
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(limit=0, enable_cleanup_closed=True),
                # Requests of many callers share this session: a cookie one answer sets must not
                # travel with the next caller's request.
                cookie_jar=aiohttp.DummyCookieJar(),
                # SSE is not worth compressing on the way back; asking for it uncompressed
                # spares a decoder per answer.
                auto_decompress=False,
                skip_auto_headers=["Accept-Encoding"],
            )
        return self._session

    async def stream(self, job_id: str, request: JobRequest) -> AsyncIterator[Chunk | Done]:
        body: dict[str, Any] = request.model_dump(exclude_none=True)
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        ending = _Ending()
        try:
            async with self._client().post(self._url, data=orjson.dumps(body), headers=_JSON) as response:
                if response.status != 200:
                    text = (await response.read()).decode("utf-8", "replace")[:300]
                    raise BackendError(f"upstream answered {response.status}: {text}", "upstream_error")
                # Read to the end of the body (not just to [DONE]) so the connection goes back to
                # the pool instead of being closed and reopened next time.
                async for events, error in _reads(response.content):
                    for chunk in _chunks(job_id, events, ending):
                        yield chunk
                    if error is not None:
                        raise error
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise BackendError(f"upstream unreachable: {exc!r}", "upstream_unreachable") from exc
        yield Done(job_id=job_id, finish_reason=ending.finish, usage=ending.usage)


async def _reads(
    content: aiohttp.StreamReader,
) -> AsyncIterator[tuple[list[dict[str, Any]], BackendError | None]]:
    """The SSE events of the body, one list per socket read (one pass per read, not per line),
    with the error that ends the stream after them, if one does."""
    pending = b""
    async for received in content.iter_any():
        lines = (pending + received).split(b"\n")
        pending = lines.pop()
        if len(pending) > _LINE_LIMIT:
            raise BackendError("upstream sent an oversized line", "upstream_error")
        events, error = _parse([d for line in lines if (d := _data(line)) is not None])
        yield events, error
        if error is not None:
            return
    if pending and (last := _data(pending)) is not None:
        yield _parse([last])


def _data(line: bytes) -> bytes | None:
    """The JSON text of one SSE ``data:`` line; None for other lines and ``[DONE]``."""
    if not line.startswith(b"data:"):
        return None
    data = line[5:].strip()
    return None if data == b"[DONE]" or not data else data


def _parse(texts: list[bytes]) -> tuple[list[dict[str, Any]], BackendError | None]:
    """The events of one read, up to the first that ends the stream (malformed JSON, anything but
    an object, an upstream's error object), and that error."""
    try:  # one parse for the whole read, as a JSON array
        parsed: list[Any] = orjson.loads(b"[" + b",".join(texts) + b"]")
    except orjson.JSONDecodeError:  # find the bad one
        parsed = []
        for text in texts:
            try:
                parsed.append(orjson.loads(text))
            except orjson.JSONDecodeError:
                parsed.append(None)
                break
    events: list[dict[str, Any]] = []
    for event in parsed:
        if not isinstance(event, dict):
            return events, BackendError("upstream sent malformed JSON", "upstream_error")
        if "error" in event:
            return events, BackendError(f"upstream error: {event['error']}", "upstream_error")
        events.append(event)
    return events, None


@dataclass
class _Ending:
    """What the stream says about its end, wherever in the stream it says it."""

    finish: Literal["stop", "length", "tool_calls"] = "stop"
    usage: Usage = field(default_factory=Usage)


def _chunks(job_id: str, events: list[dict[str, Any]], ending: _Ending) -> list[Chunk]:
    """The chunks of the events of one read. Text deltas that arrived together become one chunk of
    that many tokens: a fast upstream sends many per packet, and each chunk costs the node a pass."""
    out: list[Chunk] = []
    text: list[str] = []
    for event in events:
        if event.get("usage"):
            ending.usage = Usage(
                prompt_tokens=event["usage"].get("prompt_tokens") or 0,
                completion_tokens=event["usage"].get("completion_tokens") or 0,
            )
        for choice in event.get("choices") or []:
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if content:
                if not isinstance(content, str):
                    raise BackendError("upstream sent non-text content", "upstream_error")
                text.append(content)
            if delta.get("tool_calls"):
                if text:
                    out.append(_text(job_id, text))
                    text = []
                out.extend(_tool_call(job_id, call) for call in delta["tool_calls"])
            if choice.get("finish_reason"):
                ending.finish = _FINISH.get(choice["finish_reason"], "stop")
    if text:
        out.append(_text(job_id, text))
    return out


def _text(job_id: str, pieces: list[str]) -> Chunk:
    # Checked by the caller; skipping pydantic's validation matters on the hot path.
    return Chunk.model_construct(job_id=job_id, content="".join(pieces), tokens=len(pieces))


def _tool_call(job_id: str, call: dict[str, Any]) -> Chunk:
    function = call.get("function") or {}
    return Chunk(
        job_id=job_id,
        tool_call=ToolCallDelta(
            index=call.get("index", 0),
            id=call.get("id"),
            name=function.get("name"),
            arguments=function.get("arguments") or "",
        ),
    )
