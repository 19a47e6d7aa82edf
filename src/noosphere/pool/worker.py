"""``noosphere worker``: a process that joins a node's pool over the WebSocket and runs jobs on a
backend (local llama.cpp or an OpenAI-compatible proxy). It reconnects with backoff when the node
goes away, and stops for good when the node rejects its credentials. Given several addresses (the
processes of a cluster), it joins the first that answers and, when that one goes away, the next
at once; it backs off only once none answers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import anyio
from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from noosphere.pool.backends.base import Backend, BackendError
from noosphere.pool.protocol import (
    Accepted,
    Cancel,
    Failed,
    Heartbeat,
    Hello,
    Job,
    Rejected,
    node_frames,
)

logger = logging.getLogger(__name__)
RETRYABLE = (OSError, ConnectionClosed, InvalidHandshake, TimeoutError)
LASTING_SESSION_S = 5.0  # a session shorter than this counts as a failed attempt (no tight loop)


class WorkerRejected(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


def worker_url(join: str) -> str:
    """``ws://host:port`` (or http/https) → the node's worker endpoint."""
    parts = urlsplit(join if "://" in join else "ws://" + join)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path if parts.path not in ("", "/") else "/ws/worker"
    return urlunsplit((scheme, parts.netloc, path, "", ""))


@asynccontextmanager
async def _one_error() -> AsyncIterator[None]:
    """A task group's single error as itself (a lost connection, a rejection), not wrapped in an
    exception group, so ``run`` retries or gives up on it by its kind."""
    try:
        yield
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise


class RemoteWorker:
    def __init__(
        self, url: str | Sequence[str], token: str, backend: Backend, name: str, capacity: int = 1
    ) -> None:
        self.urls = [worker_url(u) for u in ([url] if isinstance(url, str) else url)]
        if not self.urls:
            raise ValueError("a worker needs the address of at least one node")
        self.url = self.urls[0]  # the address it is joined to, or tries next
        self.token = token
        self.backend = backend
        self.name = name
        self.capacity = capacity
        self.accepted: Accepted | None = None
        self._send_lock = asyncio.Lock()
        self._jobs: dict[str, anyio.CancelScope] = {}

    async def run(self, reconnect: bool = True) -> None:
        delay = 1.0
        misses = 0  # attempts in a row that gave no lasting session
        turn = 0
        while True:
            self.url = self.urls[turn % len(self.urls)]
            turn += 1
            started = anyio.current_time()
            try:
                ws = await connect(self.url, open_timeout=10, max_size=16 * 2**20)
                try:
                    await self._session(ws)
                finally:
                    # Close even when cancelled (leaving the pool), but never hang on it.
                    with anyio.move_on_after(5, shield=True):
                        await ws.close()
            except WorkerRejected:
                raise
            except InvalidURI as exc:
                raise WorkerRejected("invalid_url", str(exc)) from exc
            except RETRYABLE as exc:
                if not reconnect:
                    raise
                logger.warning("lost the node at %s (%s)", self.url, exc)
            if not reconnect:
                return
            if anyio.current_time() - started >= LASTING_SESSION_S:  # a session ended: rejoin at once
                delay, misses = 1.0, 0
                continue
            misses += 1
            if misses < len(self.urls):  # addresses not tried yet this round: the next one at once
                continue
            logger.warning("no node answers; trying again in %.0fs", delay)
            misses = 0
            await anyio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def _session(self, ws: ClientConnection) -> None:
        hello = Hello(token=self.token, name=self.name, models=self.backend.offers(), capacity=self.capacity)
        await ws.send(hello.model_dump_json())
        reply = node_frames.validate_json(await ws.recv())
        if isinstance(reply, Rejected):
            raise WorkerRejected(reply.code, reply.message)
        if not isinstance(reply, Accepted):
            raise WorkerRejected("protocol_error", f"expected accepted, got {reply.type}")
        self.accepted = reply
        logger.info("joined %s as %s", self.url, reply.worker_id)
        try:
            async with _one_error(), anyio.create_task_group() as group:
                group.start_soon(self._heartbeat, ws, reply.heartbeat_interval)
                async for raw in ws:
                    try:
                        frame = node_frames.validate_json(raw)
                    except ValidationError:
                        logger.warning("ignoring an unreadable frame from the node")
                        continue
                    if isinstance(frame, Rejected):
                        raise WorkerRejected(frame.code, frame.message)
                    if isinstance(frame, Job):
                        group.start_soon(self._run_job, ws, frame)
                    elif isinstance(frame, Cancel) and (scope := self._jobs.get(frame.job_id)):
                        scope.cancel()
                group.cancel_scope.cancel()
        finally:
            for scope in self._jobs.values():
                scope.cancel()
            self.accepted = None

    async def _send(self, ws: ClientConnection, payload: str) -> None:
        async with self._send_lock:
            await ws.send(payload)

    async def _heartbeat(self, ws: ClientConnection, interval: float) -> None:
        while True:
            await self._send(ws, Heartbeat(active_jobs=len(self._jobs)).model_dump_json())
            await anyio.sleep(interval)

    async def _run_job(self, ws: ClientConnection, job: Job) -> None:
        with anyio.CancelScope() as scope:
            self._jobs[job.job_id] = scope
            stream = self.backend.stream(job.job_id, job.request)
            failure: Failed | None = None
            try:
                async for frame in stream:
                    await self._send(ws, frame.model_dump_json())
            except BackendError as exc:
                failure = Failed(job_id=job.job_id, code=exc.code, message=exc.message)
            except Exception as exc:
                logger.exception("job %s failed", job.job_id)
                failure = Failed(job_id=job.job_id, message=str(exc))
            finally:
                with anyio.CancelScope(shield=True):  # stop generation even when cancelled
                    await stream.aclose()  # type: ignore[attr-defined]
                self._jobs.pop(job.job_id, None)
            if failure is not None:
                await self._send(ws, failure.model_dump_json())
