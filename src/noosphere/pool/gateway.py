"""The gateway: turns a caller's chat request into a scheduled job and its events, resolves model
names and aliases, and reports the pool. Wire formats (OpenAI JSON, SSE) live in the server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

import anyio

from noosphere.auth.principal import Principal
from noosphere.config import PoolSettings
from noosphere.errors import (
    BudgetExhausted,
    InvalidRequest,
    ModelNotFound,
    NoCapacity,
    RateLimited,
)
from noosphere.memory.service import MemoryService
from noosphere.pool.books import Admitted, Books
from noosphere.pool.checker import Checker
from noosphere.pool.fairness import weighted_tokens
from noosphere.pool.jobs import ChatJob, JobEvent
from noosphere.pool.ledger import Ledger
from noosphere.pool.limits import Limiter, RateLimiter
from noosphere.pool.protocol import Failed, JobRequest, ModelOffer
from noosphere.pool.scheduler import QueueFull, Scheduler, Worker
from noosphere.pool.tokens import TokenCounter
from noosphere.store.contract import Holds


@dataclass(frozen=True)
class ModelStatus:
    id: str
    aliases: list[str]
    workers: int
    upstreams: int
    slots: int
    free_slots: int
    context_length: int


@dataclass(frozen=True)
class RemoteCapacity:
    """One model as the other processes of a cluster serve it."""

    workers: int
    slots: int
    free: int
    context_length: int


class Cluster(Protocol):
    def remote_models(self) -> Mapping[str, RemoteCapacity]: ...


class Gateway:
    def __init__(
        self,
        scheduler: Scheduler,
        settings: PoolSettings,
        counter: TokenCounter,
        ledger: Ledger,
        limiter: Limiter | None = None,
        memory: MemoryService | None = None,
        checker: Checker | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.settings = settings
        self.counter = counter
        self.ledger = ledger
        self.limiter: Limiter = limiter or RateLimiter()
        self.checker = checker
        self.books = Books(ledger, settings, memory)
        self._open: dict[str, Admitted] = {}
        # Models a supervised worker serves, known even while it restarts: requests for them wait
        # in the queue (up to queue_timeout_seconds) instead of failing with model_not_found.
        self.expected: dict[str, ModelOffer] = {}
        self.cluster: Cluster | None = None  # the other processes of a cluster, when in one

    def expect(self, offer: ModelOffer) -> None:
        self.expected[offer.name] = offer

    def resolve(self, model: str) -> tuple[str, list[Worker]]:
        """The served model a request names (directly or by alias), with the workers serving it.
        Never another model."""
        name = self.settings.aliases.get(model, model)
        served = self.scheduler.models()
        if name not in served and name not in self.expected:
            known = sorted(set(served) | set(self.expected) | set(self.settings.aliases))
            raise ModelNotFound(
                f"no worker or upstream serves model {model!r}"
                + (f"; available: {', '.join(known)}" if known else "; no models are available yet")
            )
        return name, served.get(name, [])

    def context_length(self, name: str, servers: list[Worker]) -> int:
        """The largest context any server of ``name`` offers (or will, once it is back)."""
        offered = [w.models[name].context_length for w in servers]
        if name in self.expected:
            offered.append(self.expected[name].context_length)
        return max(offered, default=0)

    def models(self, own: bool = False) -> list[ModelStatus]:
        """Every model served, with its servers' counts (in a cluster, every process's workers);
        ``own``: only what this node's healthy workers and upstreams serve (what it offers its
        federated peers), not what it reaches through peers."""
        aliases: dict[str, list[str]] = {}
        for alias, target in self.settings.aliases.items():
            aliases.setdefault(target, []).append(alias)
        out = []
        remote = dict(self.cluster.remote_models()) if self.cluster is not None else {}
        served = {
            name: mine
            for name, servers in self.scheduler.models().items()
            if (mine := [w for w in servers if not w.remote and (not own or (w.peer is None and w.healthy))])
            or name in remote
        }
        for name in remote:
            served.setdefault(name, [])
        if not own:
            for name in self.expected:
                served.setdefault(name, [])
        for name, servers in sorted(served.items()):
            elsewhere = remote.get(name, RemoteCapacity(0, 0, 0, 0))
            context = max(self.context_length(name, servers), elsewhere.context_length)
            out.append(
                ModelStatus(
                    id=name,
                    aliases=sorted(aliases.get(name, [])),
                    workers=sum(not w.upstream for w in servers) + elsewhere.workers,
                    upstreams=sum(w.upstream for w in servers),
                    slots=sum(w.capacity for w in servers) + elsewhere.slots,
                    free_slots=sum(w.free_slots for w in servers) + elsewhere.free,
                    context_length=context,
                )
            )
        return out

    @asynccontextmanager
    async def run(
        self,
        principal: Principal,
        request: JobRequest,
        conversation: str | None = None,
        bulk: bool = False,
        via: tuple[str, ...] = (),
    ) -> AsyncIterator[ChatJob]:
        """Schedule ``request``; the job is cancelled if the caller leaves before it finishes.
        A ``bulk`` job (a chat completion) may be held back while agents' calls need the loop.
        Its usage is in the ledger by the time this exits (``settle`` writes it earlier, so an
        answer is never complete before it is paid for). With a ``conversation`` id, a completed
        exchange of a caller that opted in is kept as its encrypted (L2) conversation memory.
        ``via``: the nodes that forwarded it here (it is never forwarded back to one of them)."""
        name, servers = self.resolve(request.model)
        job = ChatJob(
            user=principal.id,
            model=name,
            request=request.model_copy(update={"model": name}),
            prompt_tokens=self.counter.prompt(request),
            deadline=self.scheduler.clock() + self.settings.queue_timeout_seconds,
            bulk=bulk,
            via=via,
        )
        largest = self.context_length(name, servers)
        if job.prompt_tokens >= largest:
            error = InvalidRequest(
                f"the prompt has about {job.prompt_tokens} tokens; the largest context any worker "
                f"serving {name} offers is {largest}"
            )
            error.code = "context_length_exceeded"
            raise error
        admitted = await self._admit(principal, job, largest, conversation)
        try:
            self.scheduler.submit(job)
        except QueueFull as exc:
            await self.ledger.release(principal, admitted.reserved)
            raise RateLimited(f"the gateway is saturated: {exc}", retry_after=5) from exc
        self._open[job.id] = admitted
        try:
            yield job
        finally:
            self.scheduler.cancel(job.id)
            try:
                with anyio.CancelScope(shield=True):
                    await self.settle(job)
            finally:
                self.scheduler.release(job)

    async def settle(self, job: ChatJob) -> None:
        """Settle the finished ``job``'s reservation and hand its usage (and captured turns) to the
        books; once per job. Called before the last byte of an answer goes out.
        ``StorageUnavailable`` when a write it has to wait for fails (see ``Books``)."""
        admitted = self._open.pop(job.id, None)
        if admitted is None:
            return
        await self.ledger.settle(admitted.principal, job, admitted.reserved)
        key = admitted.principal.key
        if key is not None and key.tpm is not None:
            await self.limiter.add(key.id, self.ledger.tokens(job)[1])
        await self.books.write(admitted, job)

    async def flush(self) -> None:
        """Write every finished request's usage (on shutdown)."""
        await self.books.close()

    async def _admit(
        self, principal: Principal, job: ChatJob, context: int, conversation: str | None
    ) -> Admitted:
        """Rate limits, then the budget: the request reserves what it may cost (its prompt and
        as many completion tokens as it may produce), so concurrent requests cannot overshoot. A
        key near the end of its budget gets ``max_tokens`` lowered to what the budget covers."""
        key = principal.key
        reserved = 0.0
        if key is not None and (key.rpm is not None or key.tpm is not None):
            decision = await self.limiter.admit(key.id, key.rpm, key.tpm, job.prompt_tokens)
            if not decision.allowed:
                raise RateLimited(
                    f"API key {key.id} is limited to {decision.reason}", retry_after=decision.retry_after
                )
        if key is not None and key.budget is not None:
            budget, prompt = key.budget, job.prompt_tokens
            smallest = weighted_tokens(prompt, 1)
            room = context - prompt
            wanted = min(job.request.max_tokens or room, room)

            def decide(spent: float, holds: Holds) -> float:
                nonlocal wanted
                used = spent + holds.pending
                if budget - used < smallest:
                    period = "" if key.budget_period == "total" else f" this {key.budget_period[:-2]}"
                    raise BudgetExhausted(
                        f"API key {key.id} has used {used:g} of its {budget:g} credits{period}"
                    )
                left = budget - used - holds.reserved
                if left < smallest:  # what is left is held by requests still running: wait for them
                    raise RateLimited(
                        f"the rest of API key {key.id}'s budget is held by its requests in flight",
                        retry_after=1,
                    )
                wanted = min(wanted, int((left - prompt) // 2))
                return weighted_tokens(prompt, wanted)

            asked = wanted
            reserved = job.max_credits = await self.ledger.reserve(principal, decide)
            if wanted < asked:  # near the end of the budget: no more than it covers
                job.request = job.request.model_copy(update={"max_tokens": wanted})
        return Admitted(principal, job.request, conversation, reserved)

    def usage(self, job: ChatJob) -> tuple[int, int]:
        """(prompt, completion) tokens as the gateway counts them."""
        return self.ledger.tokens(job)

    async def first_event(self, job: ChatJob) -> JobEvent:
        """Wait for the job's first event; a failure before any output becomes an HTTP error."""
        event = await job.events.get()
        if isinstance(event, Failed) and event.code == "no_capacity":
            raise NoCapacity(
                f"no worker for {job.model} became free within {self.settings.queue_timeout_seconds:g}s "
                f"({self.scheduler.queued()} requests waiting); retry later",
                retry_after=self.settings.queue_timeout_seconds / 2,
            )
        return event

    async def maintain(self, period: float = 0.25) -> None:
        """Expire overdue queued jobs, stalled streams and silent workers, forever."""
        while True:
            await anyio.sleep(period)
            self.scheduler.expire_queued()
            self.scheduler.expire_stalled()
            self.scheduler.expire_silent_workers()


__all__ = ["Cluster", "Gateway", "ModelStatus", "RemoteCapacity"]
