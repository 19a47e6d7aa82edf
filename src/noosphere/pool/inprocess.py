"""Runs a backend inside the node process as a scheduler worker: node-configured upstreams, the
local model ``noosphere up`` attaches, and tests. A remote worker does the same work on the far
side of the WebSocket (``pool/worker.py``)."""

from __future__ import annotations

import asyncio
import logging
import uuid

from noosphere.pool.backends.base import Backend, BackendError
from noosphere.pool.protocol import Cancel, Chunk, Failed, Job
from noosphere.pool.scheduler import Scheduler, Worker

logger = logging.getLogger(__name__)


class InProcessWorker:
    def __init__(
        self, scheduler: Scheduler, backend: Backend, name: str, capacity: int = 1, upstream: bool = False
    ) -> None:
        self.scheduler = scheduler
        self.backend = backend
        self.worker = Worker(
            id=f"{'upstream' if upstream else 'local'}:{name}:{uuid.uuid4().hex[:6]}",
            name=name,
            models={m.name: m for m in backend.offers()},
            capacity=capacity,
            upstream=upstream,
            account=f"{'upstream' if upstream else 'local'}:{name}",
        )
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def run(self) -> None:
        """Serve jobs until cancelled; then leave the pool and close the backend."""
        self.worker.deliver = self._take
        self.scheduler.add_worker(self.worker)
        try:
            # Frames arrive through _take; meanwhile the worker says it is alive, as a remote one's
            # heartbeats do, or an idle one would be dropped as silent.
            while True:
                self.scheduler.seen(self.worker.id)
                await asyncio.sleep(self.scheduler.heartbeat_interval)
        finally:
            for task in list(self._tasks.values()):
                task.cancel()
            self.scheduler.remove_worker(self.worker.id, "shut down")
            await self.backend.aclose()

    def _take(self, frame: Job | Cancel) -> None:
        self.scheduler.seen(self.worker.id)
        if isinstance(frame, Job):
            self._start(frame)
        elif running := self._tasks.get(frame.job_id):
            running.cancel()

    def _start(self, job: Job) -> None:
        task = asyncio.create_task(self._run_job(job))
        self._tasks[job.job_id] = task

        def forget(_: asyncio.Task[None]) -> None:
            self._tasks.pop(job.job_id, None)

        task.add_done_callback(forget)

    async def _run_job(self, job: Job) -> None:
        stream = self.backend.stream(job.job_id, job.request)
        try:
            async for frame in stream:
                self.scheduler.seen(self.worker.id)
                if isinstance(frame, Chunk):
                    self.scheduler.on_chunk(self.worker.id, frame)
                else:
                    self.scheduler.on_done(self.worker.id, frame)
        except BackendError as exc:
            self.scheduler.on_failed(
                self.worker.id, Failed(job_id=job.job_id, code=exc.code, message=exc.message)
            )
        except Exception as exc:
            logger.exception("backend %s failed on %s", self.worker.name, job.job_id)
            self.scheduler.on_failed(self.worker.id, Failed(job_id=job.job_id, message=str(exc)))
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
