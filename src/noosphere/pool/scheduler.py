"""The scheduler: which job runs next, on which worker. One instance per node, used only from the
event loop (no locks). Decisions come from ``fairness.py``; this module keeps the state.

- Jobs wait in per-user FIFO queues. The next job belongs to the user with the smallest VTC
  counter among those whose head job can start now; its worker is the eligible one with the least
  service relative to capacity.
- Eligible means: serves the model, the prompt fits its context, healthy, a free slot. Upstream
  backends are eligible only after a job has waited ``spill_after`` seconds for a worker.
- Chat completions from the OpenAI surface are *bulk*: while ``bulk_limit`` is set (by
  ``server/interactive.py``, when they crowd the event loop that agents' calls share), at most that
  many run at once; the rest wait in their users' queues, in the same fair order. A bulk job holds
  its slot from its start until its requester is done with it (``release``, after the answer's
  last byte and its accounting), since that is the work the limit is about.
- A job that has not started by its deadline fails with ``no_capacity`` (the API answers 503
  with Retry-After). A full queue refuses new jobs (429).
- Frames go to workers through per-worker outboxes that their connections drain.
- In a cluster (``cluster/dispatch.py``) the workers of other processes appear here as one
  *remote* worker per model: a job no worker of this process can start goes there next, before
  upstreams and peers. Jobs other processes send here run on this process's own workers only
  (``local_only``) and leave the fairness counters to the process that took the request.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from noosphere.pool.fairness import (
    WorkerLoad,
    decayed,
    joining_service,
    lifted_counter,
    next_user,
    pick_worker,
    weighted_tokens,
)
from noosphere.pool.jobs import ChatJob, JobState
from noosphere.pool.protocol import Cancel, Chunk, Done, Failed, Job, ModelOffer

OutFrame = Job | Cancel
SERVICE_HALF_LIFE_S = 60.0
UNLIMITED = 1 << 30
MAX_HOPS = 2  # nodes a chat may pass through before it runs (forwarded between peers)


@dataclass(eq=False)
class Worker:
    id: str
    name: str
    models: dict[str, ModelOffer]
    capacity: int
    upstream: bool = False  # a node-configured backend: used when workers are busy or absent
    peer: str | None = None  # a federated peer node's id: its models, used after workers and upstreams
    remote: bool = False  # other processes' workers of the cluster, used after this process's own
    account: str = ""  # ledger account that earns for its work (default: worker:<name>)
    throughput: float = 1.0  # benchmarked tokens/s (the checker updates it)
    healthy: bool = True
    last_seen: float = 0.0
    service: float = 0.0
    service_at: float = 0.0
    running: dict[str, ChatJob] = field(default_factory=dict)
    outbox: asyncio.Queue[OutFrame] = field(default_factory=asyncio.Queue)
    # An in-process worker takes its frames at once instead of from the outbox (no task switch).
    deliver: Callable[[OutFrame], None] | None = None
    closed: asyncio.Event = field(default_factory=asyncio.Event)  # set when the pool drops it
    close_reason: str = ""

    @property
    def free_slots(self) -> int:
        return self.capacity - len(self.running)

    @property
    def kind(self) -> str:
        """worker (this process's own), cluster (other processes'), upstream or peer."""
        if self.peer is not None:
            return "peer"
        return "upstream" if self.upstream else "cluster" if self.remote else "worker"


class QueueFull(Exception):
    pass


class Scheduler:
    def __init__(
        self,
        max_queued: int = 1000,
        spill_after: float = 2.0,
        heartbeat_interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        stall_after: float = 120.0,
    ) -> None:
        self.max_queued = max_queued
        self.spill_after = spill_after
        self.heartbeat_interval = heartbeat_interval
        self.stall_after = stall_after  # a running job with no token for this long has stalled
        self.clock = clock
        self.workers: dict[str, Worker] = {}
        self.queues: dict[str, deque[ChatJob]] = {}
        self.counters: dict[str, float] = {}
        self._running: dict[str, int] = {}  # running jobs per user, kept to decide activity in O(1)
        self.jobs: dict[str, ChatJob] = {}
        self._submitted_at: dict[str, float] = {}
        self._arrival: dict[str, int] = {}
        self._arrivals = 0
        self.bulk_limit = UNLIMITED  # most bulk jobs running at once
        self.bulk_running = 0
        self.on_finished: Callable[[ChatJob], None] | None = None  # a job that ran ended (metrics)
        self.on_change: Callable[[], None] | None = None  # workers or their free slots changed
        # Service counted here and users lifted on return, not yet added to shared counters (a
        # cluster's ``SharedCounters`` takes them); None: counters are this process's alone.
        self.unshared: dict[str, float] | None = None
        self.lifted: dict[str, float] = {}

    # -- workers -------------------------------------------------------------------------------
    def add_worker(self, worker: Worker) -> None:
        worker.account = worker.account or f"worker:{worker.name}"
        now = self.clock()
        existing = [self._load(w, now) for w in self.workers.values() if not w.upstream]
        worker.service = joining_service(existing, worker.throughput) if not worker.upstream else 0.0
        worker.service_at = now
        worker.last_seen = now
        self.workers[worker.id] = worker
        self._changed()
        self.dispatch()

    def remove_worker(self, worker_id: str, reason: str) -> None:
        """Drop a worker. Jobs it had not started (no token yet) go back to the front of their
        queue; started ones end with an explicit error, never a silent truncation."""
        worker = self.workers.pop(worker_id, None)
        if worker is None:
            return
        worker.close_reason = reason
        worker.closed.set()
        for job in list(worker.running.values()):
            if job.completion_tokens == 0:
                self._unstart(worker, job)
            else:
                self._finish(job, Failed(job_id=job.id, code="worker_lost", message=f"the worker {reason}"))
        self._changed()
        self.dispatch()

    def seen(self, worker_id: str) -> None:
        if worker := self.workers.get(worker_id):
            worker.last_seen = self.clock()

    def expire_silent_workers(self) -> list[str]:
        cutoff = self.clock() - 3 * self.heartbeat_interval
        silent = [w.id for w in self.workers.values() if not w.upstream and w.last_seen < cutoff]
        for worker_id in silent:
            self.remove_worker(worker_id, "stopped sending heartbeats")
        return silent

    def expire_stalled(self) -> list[str]:
        """End running jobs whose worker sent nothing for ``stall_after`` seconds — one that
        heartbeats but produces no tokens — with ``worker_stalled``, and tell it to stop."""
        cutoff = self.clock() - self.stall_after
        stalled = [
            (worker, job)
            for worker in self.workers.values()
            for job in worker.running.values()
            if job.progressed_at < cutoff
        ]
        for worker, job in stalled:
            self._send(worker, Cancel(job_id=job.id))
            message = f"the worker sent nothing for {self.stall_after:g}s"
            self._finish(job, Failed(job_id=job.id, code="worker_stalled", message=message))
        return [job.id for _, job in stalled]

    def models(self) -> dict[str, list[Worker]]:
        """Every model a connected worker or upstream serves, with its servers."""
        out: dict[str, list[Worker]] = {}
        for worker in self.workers.values():
            for name in worker.models:
                out.setdefault(name, []).append(worker)
        return out

    # -- jobs ----------------------------------------------------------------------------------
    def queued(self) -> int:
        return sum(len(q) for q in self.queues.values())

    def submit(self, job: ChatJob) -> None:
        if self.queued() >= self.max_queued:
            raise QueueFull(f"{self.queued()} requests are already waiting")
        if not self._active(job.user) and job.fair:
            active = {u: self.counters.get(u, 0.0) for u in [*self.queues, *self._running]}
            lifted = lifted_counter(self.counters.get(job.user, 0.0), active)
            self.counters[job.user] = lifted
            if self.unshared is not None:
                self.lifted[job.user] = lifted
        self.queues.setdefault(job.user, deque()).append(job)
        self.jobs[job.id] = job
        job.submitted_at = self._submitted_at[job.id] = self.clock()
        self._arrivals += 1
        self._arrival[job.id] = self._arrivals
        self.dispatch()

    def cancel(self, job_id: str) -> None:
        """The requester went away: drop a queued job, or tell its worker to stop."""
        job = self.jobs.get(job_id)
        if job is None or job.state is JobState.FINISHED:
            return
        if job.state is JobState.QUEUED:
            self._unqueue(job)
            self._forget(job)
            job.state = JobState.FINISHED
            return
        worker = self.workers.get(job.worker_id or "")
        if worker is not None:
            self._send(worker, Cancel(job_id=job.id))
        self._finish(job, Failed(job_id=job.id, code="cancelled", message="the client went away"))

    def release(self, job: ChatJob) -> None:
        """The requester is done with ``job`` (answered and accounted): its bulk slot is free."""
        if self._free_slot(job):
            self.dispatch()

    def _free_slot(self, job: ChatJob) -> bool:
        if not job.holds_slot:
            return False
        job.holds_slot = False
        self.bulk_running -= 1
        return True

    def expire_queued(self) -> None:
        now = self.clock()
        for queue in list(self.queues.values()):
            for job in [j for j in queue if j.deadline <= now]:
                self._unqueue(job)
                job.state = JobState.FINISHED
                self._forget(job)
                job.events.put_nowait(
                    Failed(
                        job_id=job.id,
                        code="no_capacity",
                        message=f"no worker for {job.model} became free in time",
                    )
                )
        self.dispatch()

    # -- frames from workers -------------------------------------------------------------------
    def on_chunk(self, worker_id: str, chunk: Chunk) -> None:
        job = self._running_on(worker_id, chunk.job_id)
        if job is None:
            return
        job.completion_tokens += chunk.tokens
        job.progressed_at = self.clock()
        if job.first_token_at is None:
            job.first_token_at = job.progressed_at
        job.output.append(chunk.content or "")
        if chunk.tool_call is not None:
            job.output.append((chunk.tool_call.name or "") + chunk.tool_call.arguments)
        weight = weighted_tokens(0, chunk.tokens)
        self._count(job, weight)
        self._serve(self.workers[worker_id], weight)
        job.events.put_nowait(chunk)

    def on_done(self, worker_id: str, done: Done) -> None:
        if job := self._running_on(worker_id, done.job_id):
            self._finish(job, done)

    def on_failed(self, worker_id: str, failed: Failed) -> None:
        if job := self._running_on(worker_id, failed.job_id):
            self._finish(job, failed)

    def requeue(self, worker_id: str, job_id: str) -> None:
        """The worker could not take a job it was given after all (another process's worker filled
        up meanwhile): back to the front of its queue, as if never started."""
        worker = self.workers.get(worker_id)
        job = None if worker is None else worker.running.get(job_id)
        if worker is None or job is None or job.completion_tokens:
            return
        self._unstart(worker, job)
        self._changed()
        self.dispatch()

    def _unstart(self, worker: Worker, job: ChatJob) -> None:
        """Put a job that has produced nothing back at the front of its user's queue."""
        worker.running.pop(job.id)
        self._stopped(job)
        self._free_slot(job)
        job.state = JobState.QUEUED
        job.worker_id = None
        self.queues.setdefault(job.user, deque()).appendleft(job)

    # -- dispatch ------------------------------------------------------------------------------
    def limit_bulk(self, limit: int) -> None:
        """Run at most ``limit`` bulk jobs at once (``UNLIMITED``: no limit). Running ones are
        never stopped; a higher limit starts waiting ones at once."""
        self.bulk_limit = limit
        self.dispatch()

    def dispatch(self) -> None:
        """Start as many queued jobs as free, eligible workers allow, fairest first."""
        while True:
            now = self.clock()
            startable: dict[str, float] = {}
            arrival: dict[str, int] = {}
            for waiting, queue in self.queues.items():
                if queue and self._may_start(queue[0]) and self._candidates(queue[0], now):
                    startable[waiting] = self.counters.get(waiting, 0.0)
                    arrival[waiting] = self._arrival.get(queue[0].id, 0)
            user = next_user(startable, arrival)
            if user is None:
                return
            job = self.queues[user][0]
            self._unqueue(job)
            candidates = self._candidates(job, now)
            chosen = pick_worker([self._load(w, now) for w in candidates])
            assert chosen is not None
            self._start(job, self.workers[chosen])

    def _may_start(self, job: ChatJob) -> bool:
        return not job.bulk or self.bulk_running < self.bulk_limit

    def _candidates(self, job: ChatJob, now: float) -> list[Worker]:
        def fits(w: Worker) -> bool:
            offer = w.models.get(job.model)
            return (
                offer is not None
                and w.healthy
                and w.free_slots > 0
                and job.prompt_tokens < offer.context_length
            )

        if job.pinned_worker is not None:  # a health probe: that worker, healthy or not
            pinned = self.workers.get(job.pinned_worker)
            ok = pinned is not None and job.model in pinned.models and pinned.free_slots > 0
            return [pinned] if ok and pinned is not None else []
        workers = [w for w in self.workers.values() if not w.upstream and not w.remote and fits(w)]
        if workers or job.local_only:
            return workers
        remote = [w for w in self.workers.values() if w.remote and fits(w)]
        if remote:
            return remote
        waited = now - self._submitted_at.get(job.id, now)
        has_worker = any(job.model in w.models and not w.upstream for w in self.workers.values())
        if has_worker and waited < self.spill_after:
            return []
        upstreams = [w for w in self.workers.values() if w.upstream and w.peer is None and fits(w)]
        if upstreams:
            return upstreams
        # Last, a peer node: never one the job came through, and not past the hop limit.
        if len(job.via) >= MAX_HOPS:
            return []
        return [w for w in self.workers.values() if w.peer is not None and w.peer not in job.via and fits(w)]

    def _start(self, job: ChatJob, worker: Worker) -> None:
        job.state = JobState.RUNNING
        job.started_at = job.progressed_at = self.clock()
        job.worker_id = worker.id
        job.worker_name = worker.name
        job.worker_account = worker.account
        job.spilled = worker.upstream
        worker.running[job.id] = job
        self._running[job.user] = self._running.get(job.user, 0) + 1
        if job.bulk:
            job.holds_slot = True
            self.bulk_running += 1
        weight = weighted_tokens(job.prompt_tokens, 0)
        self._count(job, weight)
        self._serve(worker, weight)
        self._changed()
        self._send(worker, Job(job_id=job.id, request=job.request))

    def _finish(self, job: ChatJob, event: Done | Failed) -> None:
        if job.state is JobState.FINISHED:
            return
        if job.state is JobState.RUNNING:
            self._stopped(job)
        job.state = JobState.FINISHED
        if isinstance(event, Done):
            job.reported = event.usage
            job.outcome = "ok"
        else:
            job.outcome = "cancelled" if event.code == "cancelled" else f"failed:{event.code}"
        worker = self.workers.get(job.worker_id or "")
        if worker is not None:
            worker.running.pop(job.id, None)
            self._changed()
        self._forget(job)
        job.finished_at = self.clock()
        if self.on_finished is not None:
            self.on_finished(job)
        job.events.put_nowait(event)
        self.dispatch()

    def _forget(self, job: ChatJob) -> None:
        self.jobs.pop(job.id, None)
        self._submitted_at.pop(job.id, None)
        self._arrival.pop(job.id, None)

    def _running_on(self, worker_id: str, job_id: str) -> ChatJob | None:
        worker = self.workers.get(worker_id)
        return None if worker is None else worker.running.get(job_id)

    def _send(self, worker: Worker, frame: OutFrame) -> None:
        if worker.deliver is not None:
            worker.deliver(frame)
        else:
            worker.outbox.put_nowait(frame)

    def _active(self, user: str) -> bool:
        return user in self.queues or user in self._running

    def _unqueue(self, job: ChatJob) -> None:
        """Take a waiting job out of its user's queue; only users with waiting jobs have one."""
        queue = self.queues[job.user]
        queue.remove(job)
        if not queue:
            del self.queues[job.user]

    def _stopped(self, job: ChatJob) -> None:
        left = self._running[job.user] - 1
        if left:
            self._running[job.user] = left
        else:
            del self._running[job.user]

    def _count(self, job: ChatJob, weight: float) -> None:
        """Add service to the job's user's fairness counter (and to what the cluster is owed)."""
        if not job.fair:
            return
        self.counters[job.user] = self.counters.get(job.user, 0.0) + weight
        if self.unshared is not None:
            self.unshared[job.user] = self.unshared.get(job.user, 0.0) + weight

    def active_users(self) -> list[str]:
        """Users with jobs waiting or running here."""
        return [*self.queues, *(u for u in self._running if u not in self.queues)]

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def _serve(self, worker: Worker, weight: float) -> None:
        now = self.clock()
        worker.service = decayed(worker.service, now - worker.service_at, SERVICE_HALF_LIFE_S) + weight
        worker.service_at = now

    def _load(self, worker: Worker, now: float) -> WorkerLoad:
        service = decayed(worker.service, now - worker.service_at, SERVICE_HALF_LIFE_S)
        return WorkerLoad(worker.id, service, worker.throughput, worker.free_slots)
