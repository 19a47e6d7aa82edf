"""Fakes and helpers for tests. Not used by the node itself."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from noosphere.agents.model import Reply, RequestedCall
from noosphere.auth.principal import Principal
from noosphere.pool.backends.base import BackendError
from noosphere.pool.protocol import Chunk, Done, JobRequest, ModelOffer, ToolCallDelta, Usage


class FakeEmbedder:
    """Deterministic bag-of-words vectors: texts sharing words are similar. Fast and exact enough
    to test plumbing; the real embedder is tested against reference vectors."""

    def __init__(self, dimension: int = 64, model_id: str = "fake-bow") -> None:
        self._dimension = dimension
        self._model_id = model_id
        self.calls = 0

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimension(self) -> int:
        return self._dimension

    def close(self) -> None:
        pass

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.calls += 1
        out = np.zeros((len(texts), self._dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                bucket = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little")
                out[row, bucket % self._dimension] += 1.0
            out[row, 0] += 1e-3  # never the zero vector
        return out / np.linalg.norm(out, axis=1, keepdims=True)


class FakeModel:
    """A scripted chat backend for tests: answers with ``reply`` (one chunk per word) or, when the
    request offers tools and ``tool_calls`` is set, with those calls (arguments in pieces).
    ``fail_after`` raises mid-stream; ``delay`` paces chunks so tests can cancel in between."""

    def __init__(
        self,
        model: str = "fake",
        reply: str = "Hello from the fake model.",
        tool_calls: list[tuple[str, str]] | None = None,
        delay: float = 0.0,
        fail_after: int | None = None,
        context_length: int = 4096,
    ) -> None:
        self.model = model
        self.reply = reply
        self.tool_calls = tool_calls
        self.delay = delay
        self.fail_after = fail_after
        self.context_length = context_length
        self.started: list[str] = []
        self.closed_early: list[str] = []

    def offers(self) -> list[ModelOffer]:
        return [ModelOffer(name=self.model, context_length=self.context_length)]

    async def aclose(self) -> None:
        pass

    async def stream(self, job_id: str, request: JobRequest) -> AsyncIterator[Chunk | Done]:
        self.started.append(job_id)
        chunks: list[Chunk] = []
        if request.tools and self.tool_calls:
            for index, (name, arguments) in enumerate(self.tool_calls):
                pieces = [arguments[i : i + 4] for i in range(0, len(arguments), 4)] or [""]
                chunks.append(
                    Chunk(
                        job_id=job_id,
                        tool_call=ToolCallDelta(
                            index=index, id=f"call_{index}", name=name, arguments=pieces[0]
                        ),
                    )
                )
                chunks.extend(
                    Chunk(job_id=job_id, tool_call=ToolCallDelta(index=index, arguments=p))
                    for p in pieces[1:]
                )
            finish = "tool_calls"
        else:
            words = self.reply.split(" ")
            limit = request.max_tokens or len(words)
            chunks = [
                Chunk(job_id=job_id, content=w if i == 0 else " " + w) for i, w in enumerate(words[:limit])
            ]
            finish = "length" if limit < len(words) else "stop"
        finished = False
        try:
            for sent, chunk in enumerate(chunks):
                if self.fail_after is not None and sent == self.fail_after:
                    raise BackendError("the fake model crashed", "worker_crashed")
                if self.delay:
                    await asyncio.sleep(self.delay)
                yield chunk
            finished = True
            yield Done(
                job_id=job_id,
                finish_reason=finish,
                usage=Usage(prompt_tokens=1, completion_tokens=len(chunks)),
            )
        finally:
            if not finished:
                self.closed_early.append(job_id)


def until(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    """Poll ``condition`` until it holds, failing with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


class ScriptedModel:
    """A ``ChatModel`` for agent tests: each agent answers from its own script of replies, in order
    (the last one repeats). Records every request it was sent."""

    def __init__(self, scripts: dict[str, list[Reply]]) -> None:
        self.scripts = scripts
        self.requests: list[tuple[str, JobRequest]] = []

    async def chat(self, principal: Principal, request: JobRequest) -> Reply:
        self.requests.append((principal.name, request))
        script = self.scripts[principal.name]
        return script.pop(0) if len(script) > 1 else script[0]


def call(name: str, arguments: dict[str, object] | str, call_id: str | None = None) -> RequestedCall:
    """A tool call as a model would ask for it."""
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return RequestedCall(call_id or f"call_{name}_{uuid.uuid4().hex[:6]}", name, text)
