"""The checker: a periodic benchmark of every worker — time to first token, tokens per second,
and a fixed prompt that must produce an answer. A worker that fails or is far too slow is kept
out of routing until a later check passes; the measured speed becomes its capacity for fairness.
Upstream backends are not checked (they are someone else's service)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import anyio

from noosphere.pool.jobs import ChatJob
from noosphere.pool.protocol import Chunk, Done, Failed, JobRequest
from noosphere.pool.scheduler import Scheduler, Worker

logger = logging.getLogger(__name__)
CHECKER = "system:checker"


@dataclass(frozen=True)
class CheckResult:
    at: float  # wall-clock time
    ok: bool
    reason: str
    ttft_s: float | None = None
    tokens_per_second: float | None = None
    sample: str = ""


def assess(
    produced: int,
    ttft_s: float | None,
    tokens_per_second: float | None,
    error: str | None,
    min_tokens_per_second: float,
    max_ttft_s: float,
) -> tuple[bool, str]:
    """Pass or fail, and why."""
    if error is not None:
        return False, f"failed: {error}"
    if produced == 0 or ttft_s is None:
        return False, "produced no output"
    if ttft_s > max_ttft_s:
        return False, f"first token after {ttft_s:.1f}s (limit {max_ttft_s:g}s)"
    if tokens_per_second is not None and tokens_per_second < min_tokens_per_second:
        return False, f"{tokens_per_second:.1f} tokens/s (minimum {min_tokens_per_second:g})"
    return True, "ok"


class Checker:
    def __init__(
        self,
        scheduler: Scheduler,
        prompt: str,
        min_tokens_per_second: float,
        timeout: float,
        max_tokens: int = 24,
    ) -> None:
        self.scheduler = scheduler
        self.prompt = prompt
        self.min_tokens_per_second = min_tokens_per_second
        self.timeout = timeout
        self.max_tokens = max_tokens
        self.results: dict[str, CheckResult] = {}

    async def check(self, worker: Worker) -> CheckResult:
        model = next(iter(worker.models))
        request = JobRequest(
            model=model,
            messages=[{"role": "user", "content": self.prompt}],
            max_tokens=self.max_tokens,
            temperature=0,
        )
        job = ChatJob(
            user=CHECKER,
            model=model,
            request=request,
            prompt_tokens=len(self.prompt) // 4,
            deadline=self.scheduler.clock() + self.timeout,
            pinned_worker=worker.id,
        )
        started = time.monotonic()
        first: float | None = None
        produced, text, error = 0, [], None
        self.scheduler.submit(job)
        try:
            with anyio.fail_after(self.timeout):
                while True:
                    event = await job.events.get()
                    if isinstance(event, Chunk):
                        first = first or time.monotonic()
                        produced += event.tokens
                        text.append(event.content or "")
                    elif isinstance(event, Failed):
                        error = f"{event.code}: {event.message}"
                        break
                    elif isinstance(event, Done):
                        break
        except TimeoutError:
            error = f"no answer within {self.timeout:g}s"
        finally:
            self.scheduler.cancel(job.id)
        ttft = None if first is None else first - started
        elapsed = time.monotonic() - (first or started)
        speed = produced / elapsed if first is not None and produced > 1 and elapsed > 0 else None
        ok, reason = assess(produced, ttft, speed, error, self.min_tokens_per_second, self.timeout)
        result = CheckResult(time.time(), ok, reason, ttft, speed, "".join(text)[:200])
        self._apply(worker, result)
        return result

    def _apply(self, worker: Worker, result: CheckResult) -> None:
        self.results[worker.id] = result
        if worker.id not in self.scheduler.workers:
            return
        if result.ok != worker.healthy:
            logger.info(
                "worker %s is now %s (%s)", worker.id, "healthy" if result.ok else "excluded", result.reason
            )
        worker.healthy = result.ok
        if result.ok and result.tokens_per_second:
            worker.throughput = result.tokens_per_second
        self.scheduler.dispatch()

    async def sweep(self) -> list[CheckResult]:
        """Check every worker now (the scheduler's ``worker_checker`` job runs this)."""
        return [await self.check(w) for w in list(self.scheduler.workers.values()) if w.kind == "worker"]

    async def run(self) -> None:
        """Check every worker soon after it joins; later checks come from ``sweep``."""
        while True:
            for worker in list(self.scheduler.workers.values()):
                if worker.kind == "worker" and worker.id not in self.results:
                    await self.check(worker)
            for gone in set(self.results) - set(self.scheduler.workers):
                del self.results[gone]
            await anyio.sleep(1.0)
