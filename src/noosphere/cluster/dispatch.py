"""The pool across a cluster: a worker connected to one process serves requests that arrive at any
other, over NATS (core subjects; nothing here needs to survive a restart).

**Offers.** Every process publishes what its own workers offer — models, slots, free slots,
health — every ``heartbeat_seconds`` and whenever it changes, on ``<prefix>.offers``. Each
process mirrors the others' offers as one *remote* worker per model in its scheduler
(``Worker.remote``), whose capacity is the free slots other processes have for that model. The
scheduler uses a remote worker only when no worker of its own can start the job, and before
upstreams and peers: the never-503 chain becomes queue → another process's workers → upstream →
peer node → 429/503.

**Dispatch.** A job for remote model M is published on ``<prefix>.model.<M>``, where every process
with a free slot for M listens in one queue group (competing consumers: the first free process
takes it). The taker runs it on its own workers (``ChatJob.local_only``) and answers on the job's
reply subject: ``accepted`` (which process and worker), then the worker protocol's frames (chunk
…, done or failed). A taker that filled up meanwhile answers ``busy`` (as NATS does when nobody
listens): the job goes back to the front of its queue. The process that took the request keeps
the request's accounting, fairness and limits; the serving process only runs it.

**Failures.** The requester leaving cancels the job on the serving process
(``<prefix>.proc.<id>.cancel``). A serving process silent for ``dead_after_seconds`` ends the
streams it served with an in-stream ``worker_lost`` error; a requesting process gone silent has
its jobs cancelled where they run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Annotated

import anyio
import nats
import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from noosphere.bus.nats import subject_token
from noosphere.errors import Unavailable
from noosphere.pool.gateway import RemoteCapacity
from noosphere.pool.jobs import ChatJob, JobState
from noosphere.pool.protocol import Cancel, Chunk, Done, Failed, Job, JobRequest, ModelOffer
from noosphere.pool.scheduler import QueueFull, Scheduler, Worker

logger = logging.getLogger(__name__)

ACCEPT_TIMEOUT_S = 5.0  # a taker answers accepted or busy within this, or the job is requeued
START_DEADLINE_S = 1.0  # a job taken for another process must start on a free worker at once
QUEUE_GROUP = "serve"
MIN_OFFER_GAP_S = 0.05  # offers are published at most this often when they change


class WorkerOffer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    models: list[ModelOffer]
    capacity: int = Field(ge=0)
    free: int = Field(ge=0)
    healthy: bool


class Offers(BaseModel):
    """What one process's own workers offer, as it publishes it."""

    model_config = ConfigDict(extra="ignore")

    process: str
    name: str
    workers: list[WorkerOffer]


class Dispatched(BaseModel):
    """A job one process sends the cluster to run."""

    model_config = ConfigDict(extra="ignore")

    job_id: str
    origin: str  # the process that took the request
    user: str
    prompt_tokens: int = Field(ge=0)
    request: JobRequest


class Taken(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: str  # accepted | busy
    process: str = ""
    worker: str = ""
    account: str = ""


_Frame: TypeAdapter[Chunk | Done | Failed] = TypeAdapter(
    Annotated[Chunk | Done | Failed, Field(discriminator="type")]
)


@dataclass
class _Peer:
    offers: Offers
    seen: float


@dataclass
class _Sent:
    """A job this process sent to the cluster: the task that streams its answer, and the process
    serving it once one accepted."""

    model: str
    task: asyncio.Task[None]
    process: str | None = None


@dataclass
class _Served:
    """A job this process runs for another."""

    origin: str
    job: ChatJob
    task: asyncio.Task[None]


def _proxy_id(model: str) -> str:
    return f"cluster:{model}"


class ClusterPool:
    def __init__(
        self,
        scheduler: Scheduler,
        nats_url: str,
        stream: str,
        process: str,
        process_name: str,
        heartbeat: float,
        dead_after: float,
    ) -> None:
        self.scheduler = scheduler
        self.nats_url = nats_url
        self.prefix = f"pool.{stream.lower()}"
        self.process = process
        self.process_name = process_name
        self.heartbeat = heartbeat
        self.dead_after = dead_after
        self._nc: Client | None = None
        self._peers: dict[str, _Peer] = {}  # other processes, by id
        self._proxies: dict[str, Worker] = {}  # model → the remote worker standing for the cluster
        self._busy: set[str] = set()  # models a taker just said busy for: no free slot until news
        self._sent: dict[str, _Sent] = {}
        self._served: dict[str, _Served] = {}  # by the requester's job id
        self._listening: dict[str, Subscription] = {}  # model → subscription while a slot is free
        self._changed = asyncio.Event()
        scheduler.on_change = self._changed.set
        # Jobs sent to other processes, answered busy, lost with their process; served for others.
        self.counts = {"sent": 0, "busy": 0, "lost": 0, "served": 0}

    # -- lifecycle -----------------------------------------------------------------------------
    async def run(self) -> None:
        """Connect, then publish offers, follow the others' and serve jobs, forever."""
        try:
            self._nc = await nats.connect(
                self.nats_url, connect_timeout=5, max_reconnect_attempts=-1, name=self.process_name
            )
        except Exception as exc:
            raise Unavailable(f"cannot reach NATS at {self.nats_url}: {exc}") from exc
        nc = self._nc
        subs = [
            await nc.subscribe(f"{self.prefix}.offers", cb=self._on_offers),
            await nc.subscribe(f"{self.prefix}.proc.{self.process}.cancel", cb=self._on_cancel),
        ]
        try:
            last = 0.0
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), self.heartbeat)
                self._changed.clear()
                await self._listen()
                now = time.monotonic()
                if now - last >= MIN_OFFER_GAP_S:
                    await self._publish_offers()
                    last = now
                else:
                    await anyio.sleep(MIN_OFFER_GAP_S)
                    self._changed.set()
                self._reap(now)
        finally:
            with anyio.CancelScope(shield=True):
                await self._close(subs)

    async def _close(self, subs: list[Subscription]) -> None:
        for served in list(self._served.values()):
            self.scheduler.cancel(served.job.id)
        for sent in list(self._sent.values()):
            sent.task.cancel()
        for proxy in list(self._proxies.values()):
            self.scheduler.remove_worker(proxy.id, "left with its process")
        self._proxies.clear()
        if self._nc is not None:
            for sub in [*subs, *self._listening.values()]:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
            self._listening.clear()
            with contextlib.suppress(Exception):
                await self._nc.close()
            self._nc = None

    @property
    def nc(self) -> Client:
        if self._nc is None:
            raise Unavailable("the cluster pool is not connected to NATS")
        return self._nc

    # -- what this process offers --------------------------------------------------------------
    def _own(self) -> list[Worker]:
        return [w for w in self.scheduler.workers.values() if w.kind == "worker"]

    def _offers(self) -> Offers:
        return Offers(
            process=self.process,
            name=self.process_name,
            workers=[
                WorkerOffer(
                    name=w.name,
                    models=list(w.models.values()),
                    capacity=w.capacity,
                    free=max(0, w.free_slots),
                    healthy=w.healthy,
                )
                for w in self._own()
            ],
        )

    async def _publish_offers(self) -> None:
        await self.nc.publish(f"{self.prefix}.offers", self._offers().model_dump_json().encode())

    async def _listen(self) -> None:
        """Listen for jobs of exactly the models this process has a free, healthy worker for."""
        free = {m for w in self._own() if w.healthy and w.free_slots > 0 for m in w.models}
        for model in set(self._listening) - free:
            await self._listening.pop(model).unsubscribe()
        for model in free - set(self._listening):
            subject = f"{self.prefix}.model.{subject_token(model)}"
            self._listening[model] = await self.nc.subscribe(subject, queue=QUEUE_GROUP, cb=self._on_job)

    # -- what the others offer -----------------------------------------------------------------
    async def _on_offers(self, msg: Msg) -> None:
        try:
            offers = Offers.model_validate_json(msg.data)
        except ValidationError:
            logger.warning("unreadable cluster offers on %s", msg.subject)
            return
        if offers.process == self.process:
            return
        self._peers[offers.process] = _Peer(offers, time.monotonic())
        self._busy.clear()
        self._mirror()

    def remote_models(self) -> dict[str, RemoteCapacity]:
        """Each model other processes serve: their workers, slots and free slots."""
        totals: dict[str, list[int]] = {}
        for peer in self._peers.values():
            for worker in peer.offers.workers:
                for offer in worker.models:
                    row = totals.setdefault(offer.name, [0, 0, 0, 0])
                    row[0] += 1
                    row[1] += worker.capacity
                    row[2] += worker.free if worker.healthy else 0
                    row[3] = max(row[3], offer.context_length)
        return {name: RemoteCapacity(*row) for name, row in totals.items()}

    def processes(self) -> dict[str, str]:
        """The other processes heard from: id → name."""
        return {pid: peer.offers.name for pid, peer in self._peers.items()}

    def _mirror(self) -> None:
        """Bring the remote workers in line with the others' offers."""
        served = self.remote_models()
        for model, capacity in served.items():
            free = 0 if model in self._busy else capacity.free
            proxy = self._proxies.get(model)
            offer = ModelOffer(name=model, context_length=capacity.context_length)
            if proxy is None:
                proxy = Worker(
                    id=_proxy_id(model),
                    name="cluster",
                    models={model: offer},
                    capacity=free,
                    remote=True,
                    account="cluster",
                    throughput=float(max(1, capacity.slots)),
                )
                proxy.deliver = self._deliverer(model)
                self._proxies[model] = proxy
                self.scheduler.add_worker(proxy)
            else:
                proxy.models = {model: offer}
                proxy.capacity = len(proxy.running) + free
        for model in set(self._proxies) - set(served):
            proxy = self._proxies[model]
            proxy.capacity = len(proxy.running)
            if not proxy.running:
                del self._proxies[model]
                self.scheduler.remove_worker(proxy.id, "is no longer served by another process")
        for proxy in self._proxies.values():
            self.scheduler.seen(proxy.id)
        self.scheduler.dispatch()

    def _reap(self, now: float) -> None:
        """Processes silent for ``dead_after``: the streams they served end in error; jobs they
        asked this process to run are cancelled."""
        dead = [pid for pid, peer in self._peers.items() if now - peer.seen > self.dead_after]
        for pid in dead:
            name = self._peers.pop(pid).offers.name
            logger.warning("cluster process %s (%s) went silent", pid, name)
            for job_id, sent in list(self._sent.items()):
                if sent.process == pid:
                    sent.task.cancel()
                    self.counts["lost"] += 1
                    message = f"the cluster process serving it ({name}) stopped"
                    failed = Failed(job_id=job_id, code="worker_lost", message=message)
                    self.scheduler.on_failed(_proxy_id(sent.model), failed)
            for served in [s for s in self._served.values() if s.origin == pid]:
                self.scheduler.cancel(served.job.id)
        if dead:
            self._mirror()
        else:  # keep the remote workers from being dropped as silent between offers
            for proxy in self._proxies.values():
                self.scheduler.seen(proxy.id)

    # -- sending jobs to the cluster -----------------------------------------------------------
    def _deliverer(self, model: str) -> Callable[[Job | Cancel], None]:
        def deliver(frame: Job | Cancel) -> None:
            if isinstance(frame, Job):
                sent = _Sent(model, asyncio.create_task(self._send(model, frame)))
                self._sent[frame.job_id] = sent
                sent.task.add_done_callback(partial(self._sent_ended, frame.job_id, sent))
            elif running := self._sent.get(frame.job_id):
                running.task.cancel()  # which tells the serving process (``_send``)

        return deliver

    def _sent_ended(self, job_id: str, sent: _Sent, task: asyncio.Task[None]) -> None:
        if self._sent.get(job_id) is sent:  # not a later sending of the same job (after ``busy``)
            del self._sent[job_id]
        if not task.cancelled() and (error := task.exception()) is not None:
            logger.error("sending %s to the cluster failed", job_id, exc_info=error)
            failed = Failed(job_id=job_id, code="worker_error", message=f"cluster dispatch failed: {error}")
            self.scheduler.on_failed(_proxy_id(sent.model), failed)

    async def _send(self, model: str, frame: Job) -> None:
        proxy = self._proxies.get(model)
        job = None if proxy is None else proxy.running.get(frame.job_id)
        if proxy is None or job is None:
            return
        payload = (
            Dispatched(
                job_id=frame.job_id,
                origin=self.process,
                user=job.user,
                prompt_tokens=job.prompt_tokens,
                request=frame.request,
            )
            .model_dump_json()
            .encode()
        )
        if len(payload) > self.nc.max_payload:
            message = (
                f"the request ({len(payload)} bytes) is larger than the cluster's NATS server carries "
                f"({self.nc.max_payload} bytes: its max_payload)"
            )
            failed = Failed(job_id=job.id, code="payload_too_large", message=message)
            self.scheduler.on_failed(proxy.id, failed)
            return
        inbox = self.nc.new_inbox()
        answers = await self.nc.subscribe(inbox)
        self.counts["sent"] += 1
        try:
            await self.nc.publish(f"{self.prefix}.model.{subject_token(model)}", payload, reply=inbox)
            await self._stream(model, proxy, job, answers)
        except asyncio.CancelledError:  # the requester left, or the job stalled: stop it there too
            sending = self._sent.get(frame.job_id)
            serving = None if sending is None else sending.process
            if serving is not None:
                with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                    cancel = orjson.dumps({"job_id": frame.job_id})
                    await self.nc.publish(f"{self.prefix}.proc.{serving}.cancel", cancel)
            raise
        finally:
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await answers.unsubscribe()

    async def _stream(self, model: str, proxy: Worker, job: ChatJob, answers: Subscription) -> None:
        try:
            first = await answers.next_msg(timeout=ACCEPT_TIMEOUT_S)
        except nats.errors.TimeoutError:
            first = None
        taken = None
        if first is not None and not (first.headers and "Status" in first.headers):  # 503: no one listens
            with contextlib.suppress(ValidationError):
                taken = Taken.model_validate_json(first.data)
        if taken is None or taken.type != "accepted":
            self.counts["busy"] += 1
            self._busy.add(model)
            proxy.capacity = len(proxy.running)
            self.scheduler.requeue(proxy.id, job.id)
            return
        sending = self._sent.get(job.id)
        if sending is not None:
            sending.process = taken.process
        job.worker_name = (
            f"{taken.worker}@{self._peers[taken.process].offers.name}"
            if (taken.process in self._peers)
            else taken.worker
        )
        job.worker_account = taken.account
        while True:
            msg = await answers.next_msg(timeout=None)
            try:
                event = _Frame.validate_json(msg.data)
            except ValidationError:
                logger.warning("unreadable frame from cluster process %s", taken.process)
                continue
            event = event.model_copy(update={"job_id": job.id})
            self.scheduler.seen(proxy.id)
            if isinstance(event, Chunk):
                self.scheduler.on_chunk(proxy.id, event)
            elif isinstance(event, Done):
                self.scheduler.on_done(proxy.id, event)
                return
            else:
                self.scheduler.on_failed(proxy.id, event)
                return

    # -- serving jobs for other processes ------------------------------------------------------
    async def _on_job(self, msg: Msg) -> None:
        try:
            asked = Dispatched.model_validate_json(msg.data)
        except ValidationError:
            logger.warning("unreadable cluster job on %s", msg.subject)
            return
        job = ChatJob(
            user=asked.user,
            model=asked.request.model,
            request=asked.request,
            prompt_tokens=asked.prompt_tokens,
            deadline=self.scheduler.clock() + START_DEADLINE_S,
            local_only=True,
            fair=False,
        )
        with contextlib.suppress(QueueFull):  # answered busy below
            self.scheduler.submit(job)
        if job.state is not JobState.RUNNING:
            self.scheduler.cancel(job.id)
            await self.nc.publish(msg.reply, Taken(type="busy").model_dump_json().encode())
            return
        taken = Taken(
            type="accepted",
            process=self.process,
            worker=job.worker_name or "",
            account=job.worker_account or "",
        )
        await self.nc.publish(msg.reply, taken.model_dump_json().encode())
        relay = asyncio.create_task(self._relay(asked.job_id, job, msg.reply))
        self._served[asked.job_id] = _Served(asked.origin, job, relay)  # before the relay's first step
        self.counts["served"] += 1

    async def _relay(self, job_id: str, job: ChatJob, reply: str) -> None:
        try:
            while True:
                event = await job.events.get()
                await self.nc.publish(reply, event.model_dump_json().encode())
                if not isinstance(event, Chunk):
                    return
        finally:
            self._served.pop(job_id, None)

    async def _on_cancel(self, msg: Msg) -> None:
        with contextlib.suppress(orjson.JSONDecodeError, AttributeError, TypeError):
            job_id = orjson.loads(msg.data).get("job_id")
            if isinstance(job_id, str) and (served := self._served.get(job_id)):
                self.scheduler.cancel(served.job.id)


__all__ = ["ClusterPool"]
