"""Forwarding chat completions between peers: the "peer" step of the gateway's chain (local
workers, then upstreams, then a peer node, then 429/503).

**Asking.** Each live, unpaused peer that allows it (``forward_chat`` on both sides) and whose
heartbeat advertises models with free slots becomes a worker of this node's pool
(``PeerWorker``): the scheduler sends it a job only when no local worker or upstream can take it,
never to a node the job came through, and not past two hops (``scheduler.MAX_HOPS``). The job
goes to the peer as a signed ``POST /federation/v1/chat`` with the nodes it passed through and an
idempotency key; the answer streams back as the worker protocol's frames (chunks, then done or
failed), which feed the scheduler as a local worker's would. The caller is metered here as usual.

**Serving.** The peer runs the request through its own gateway as the forwarding node's request
(principal ``peer:<node id>``): metered in its ledger under that account, and audited
(``federation.chat``). A key seen before from that peer is refused (``duplicate_request``), so a
retried request never runs twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

import aiohttp
import anyio
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from noosphere.auth.principal import peer_principal
from noosphere.config import PeerSettings
from noosphere.errors import NoosphereError, PermissionDenied
from noosphere.expiring import Expiring
from noosphere.federation.records import Hello
from noosphere.federation.transport import stream
from noosphere.governance.audit import AuditLog
from noosphere.identity import NodeKey
from noosphere.pool.gateway import Gateway
from noosphere.pool.jobs import ChatJob
from noosphere.pool.protocol import Cancel, Chunk, Done, Failed, Job, JobRequest, ModelOffer
from noosphere.pool.scheduler import MAX_HOPS, Scheduler, Worker

log = logging.getLogger(__name__)

CHAT_PATH = "/federation/v1/chat"
KEYS_KEPT_FOR = 3600.0  # seconds a forwarded request's idempotency key is remembered


class ForwardedChat(BaseModel):
    """A chat completion a peer forwards to this node."""

    model_config = ConfigDict(extra="forbid")

    request: JobRequest
    via: list[Annotated[str, Field(max_length=64)]] = Field(min_length=1, max_length=MAX_HOPS)
    key: str = Field(min_length=8, max_length=128, description="Idempotency key.")


_Frame = TypeAdapter(Annotated[Chunk | Done | Failed, Field(discriminator="type")])


class LoopDetected(NoosphereError):
    code = "loop_detected"
    status = 508


class DuplicateRequest(NoosphereError):
    code = "duplicate_request"
    status = 409


class PeerWorker:
    """A peer node's advertised models, as one worker of this node's pool."""

    def __init__(
        self,
        scheduler: Scheduler,
        peer: PeerSettings,
        own_id: str,
        session: Callable[[], aiohttp.ClientSession | None],
        key: NodeKey,
    ) -> None:
        self.scheduler, self.peer, self.own_id, self.key = scheduler, peer, own_id, key
        self._session = session
        self.worker = Worker(
            id=f"peer:{peer.id}:{uuid.uuid4().hex[:6]}",
            name=f"peer:{peer.id}",
            models={},
            capacity=0,
            upstream=True,
            peer=peer.id,
            account=f"peer:{peer.id}",
        )
        self.worker.deliver = self._take
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def update(self, hello: Hello) -> None:
        """Take up what the peer's latest heartbeat offers: its models with free slots."""
        offered = [m for m in hello.models if m.free > 0]
        self.worker.models = {
            m.name: ModelOffer(name=m.name, context_length=m.context_length) for m in offered
        }
        self.worker.capacity = len(self.worker.running) + sum(m.free for m in offered)
        self.scheduler.seen(self.worker.id)
        self.scheduler.dispatch()

    def _take(self, frame: Job | Cancel) -> None:
        if isinstance(frame, Job):
            job = self.worker.running.get(frame.job_id)
            task = asyncio.create_task(self._run(frame, () if job is None else job.via))
            self._tasks[frame.job_id] = task
            task.add_done_callback(lambda _: self._tasks.pop(frame.job_id, None))
        elif running := self._tasks.get(frame.job_id):
            running.cancel()

    async def _run(self, frame: Job, via: tuple[str, ...]) -> None:
        job_id = frame.job_id
        session = self._session()
        if session is None:
            self._fail(job_id, "peer_unreachable", "federation is not running")
            return
        payload = {
            "request": frame.request.model_dump(mode="json", exclude_none=True),
            "via": [*via, self.own_id],
            "key": job_id,
        }
        try:
            async with stream(session, self.key, self.peer, CHAT_PATH, payload) as answer:
                if answer.status != 200:
                    self._fail(job_id, *await _error_of(answer))
                    return
                async for line in answer.content:
                    if not line.strip():
                        continue
                    event = _Frame.validate_json(line).model_copy(update={"job_id": job_id})
                    self.scheduler.seen(self.worker.id)
                    if isinstance(event, Chunk):
                        self.scheduler.on_chunk(self.worker.id, event)
                        continue
                    if isinstance(event, Done):
                        self.scheduler.on_done(self.worker.id, event)
                    else:
                        self.scheduler.on_failed(self.worker.id, event)
                    return
                self._fail(job_id, "peer_failed", "the peer's answer ended early")
        except (aiohttp.ClientError, TimeoutError, ValidationError, ValueError) as exc:
            log.info("federation peer %s: forwarded chat failed: %r", self.peer.id, exc)
            self._fail(job_id, "peer_failed", str(exc)[:200])

    def _fail(self, job_id: str, code: str, message: str) -> None:
        self.scheduler.on_failed(self.worker.id, Failed(job_id=job_id, code=code, message=message))

    def close(self, reason: str) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        self.scheduler.remove_worker(self.worker.id, reason)


async def _error_of(answer: aiohttp.ClientResponse) -> tuple[str, str]:
    try:
        error = (await answer.json(content_type=None)).get("error") or {}
        return str(error.get("code", "peer_failed"))[:64], str(error.get("message", ""))[:500]
    except (aiohttp.ClientError, ValueError, AttributeError):
        return "peer_failed", f"the peer answered {answer.status}"


class Forwarding:
    """Keeps one ``PeerWorker`` per peer that may take this node's chats, as heartbeats come."""

    def __init__(
        self,
        scheduler: Scheduler,
        key: NodeKey,
        session: Callable[[], aiohttp.ClientSession | None],
    ) -> None:
        self.scheduler, self.key, self._session = scheduler, key, session
        self.workers: dict[str, PeerWorker] = {}

    def refresh(self, usable: dict[str, tuple[PeerSettings, Hello]]) -> None:
        """``usable``: the live, unpaused peers with ``forward_chat``, with their last heartbeat."""
        for peer_id in set(self.workers) - set(usable):
            self.workers.pop(peer_id).close("the peer is gone, paused or no longer takes chats")
        for peer_id, (peer, hello) in usable.items():
            worker = self.workers.get(peer_id)
            if worker is None or worker.peer != peer:
                if worker is not None:
                    worker.close("the peer's settings changed")
                worker = self.workers[peer_id] = PeerWorker(
                    self.scheduler, peer, self.key.id, self._session, self.key
                )
                self.scheduler.add_worker(worker.worker)
            worker.update(hello)

    def close(self) -> None:
        for worker in self.workers.values():
            worker.close("the node is stopping")
        self.workers.clear()


class ChatDesk:
    """The serving side: runs peers' forwarded chats through this node's gateway."""

    def __init__(self, gateway: Gateway, audit: AuditLog, own_id: str) -> None:
        self.gateway, self.audit, self.own_id = gateway, audit, own_id
        self._keys: Expiring[tuple[str, str], bool] = Expiring(KEYS_KEPT_FOR, limit=100_000)
        # In a cluster, the keys every process has taken (``Federation.first_time``).
        self.first_time: Callable[[str, str, float], Awaitable[bool]] | None = None

    @contextlib.asynccontextmanager
    async def open(
        self, peer: PeerSettings, asked: ForwardedChat
    ) -> AsyncIterator[tuple[ChatJob, Chunk | Done | Failed]]:
        """The job running ``asked``, with its first event (a failure before any output raises)."""
        if not peer.forward_chat:
            raise PermissionDenied("this node does not take forwarded chats from the caller")
        if self.own_id in asked.via or asked.via[-1] != peer.id:
            raise LoopDetected("the chat already passed through this node, or names the wrong sender")
        if self._keys.get((peer.id, asked.key)) or (
            self.first_time is not None
            and not await self.first_time(f"chat:{peer.id}", asked.key, KEYS_KEPT_FOR)
        ):
            raise DuplicateRequest("a chat with this idempotency key was already taken")
        self._keys.put((peer.id, asked.key), True)
        caller = peer_principal(peer.id)
        async with self.gateway.run(caller, asked.request, None, bulk=True, via=tuple(asked.via)) as job:
            try:
                first = await self.gateway.first_event(job)
                yield job, first
            finally:
                prompt, completion = self.gateway.usage(job)
                body = {
                    "peer": peer.id,
                    "model": job.model,
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "outcome": job.outcome,
                }
                with anyio.CancelScope(shield=True):
                    await self.audit.append(f"peer:{peer.id}", "federation.chat", body)

    async def frames(self, job: ChatJob, first: Chunk | Done | Failed) -> AsyncIterator[bytes]:
        """The job's events as worker-protocol frames, one JSON line each; paid for before the
        last one goes out."""
        event = first
        while True:
            if isinstance(event, Done):
                await self.gateway.settle(job)
            yield event.model_dump_json().encode() + b"\n"
            if not isinstance(event, Chunk):
                return
            event = await job.events.get()


__all__ = ["CHAT_PATH", "ChatDesk", "ForwardedChat", "Forwarding", "PeerWorker"]
