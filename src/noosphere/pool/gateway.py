"""The gateway: turns a caller's chat request into a scheduled job and its events, resolves model
names and aliases, and reports the pool. Wire formats (OpenAI JSON, SSE) live in the server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

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
from noosphere.memory.model import CONVERSATION_KIND, MemoryDraft
from noosphere.memory.service import MemoryService
from noosphere.pool.checker import Checker
from noosphere.pool.jobs import ChatJob, JobEvent
from noosphere.pool.ledger import Ledger
from noosphere.pool.limits import RateLimiter
from noosphere.pool.protocol import Failed, JobRequest, ModelOffer
from noosphere.pool.scheduler import QueueFull, Scheduler, Worker
from noosphere.pool.tokens import TokenCounter

logger = logging.getLogger(__name__)


_WRITE_BATCH = 1000  # finished requests accounted for in one transaction, at most
_WRITE_DELAY = 0.1  # seconds between a request finishing and its accounting pass
# A finished request awaiting accounting: who asked, what, the job, and its conversation id.
Finished = tuple[Principal, JobRequest, ChatJob, str | None]


def _turns(request: JobRequest, job: ChatJob, conversation: str) -> list[MemoryDraft]:
    """The exchange's new user turn and the reply, as conversation (L2) memories."""
    asked = next((m for m in reversed(request.messages) if m.get("role") == "user"), None)
    texts = []
    if asked is not None and isinstance(asked.get("content"), str) and asked["content"].strip():
        texts.append(("user", asked["content"]))
    reply = "".join(job.output)
    if reply.strip():
        texts.append(("assistant", reply))
    return [
        MemoryDraft(
            content=text,
            kind=CONVERSATION_KIND,
            thread_id=conversation,
            metadata={"role": role, "model": job.model},
        )
        for role, text in texts
    ]


@dataclass(frozen=True)
class ModelStatus:
    id: str
    aliases: list[str]
    workers: int
    upstreams: int
    slots: int
    free_slots: int
    context_length: int


class Gateway:
    def __init__(
        self,
        scheduler: Scheduler,
        settings: PoolSettings,
        counter: TokenCounter,
        ledger: Ledger,
        limiter: RateLimiter | None = None,
        memory: MemoryService | None = None,
        checker: Checker | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.settings = settings
        self.counter = counter
        self.ledger = ledger
        self.limiter = limiter or RateLimiter()
        self.memory = memory
        self.checker = checker
        self._after: asyncio.Queue[Finished] = asyncio.Queue()
        # Models a supervised worker serves, known even while it restarts: requests for them wait
        # in the queue (up to queue_timeout_seconds) instead of failing with model_not_found.
        self.expected: dict[str, ModelOffer] = {}

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
        return max(offered)

    def models(self) -> list[ModelStatus]:
        aliases: dict[str, list[str]] = {}
        for alias, target in self.settings.aliases.items():
            aliases.setdefault(target, []).append(alias)
        out = []
        served = self.scheduler.models()
        for name in self.expected:
            served.setdefault(name, [])
        for name, servers in sorted(served.items()):
            out.append(
                ModelStatus(
                    id=name,
                    aliases=sorted(aliases.get(name, [])),
                    workers=sum(not w.upstream for w in servers),
                    upstreams=sum(w.upstream for w in servers),
                    slots=sum(w.capacity for w in servers),
                    free_slots=sum(w.free_slots for w in servers),
                    context_length=self.context_length(name, servers),
                )
            )
        return out

    @asynccontextmanager
    async def run(
        self, principal: Principal, request: JobRequest, conversation: str | None = None
    ) -> AsyncIterator[ChatJob]:
        """Schedule ``request``; the job is cancelled if the caller leaves before it finishes, and
        its usage is recorded in the ledger either way. With a ``conversation`` id, a completed
        exchange is kept as the caller's encrypted (L2) conversation memory."""
        name, servers = self.resolve(request.model)
        job = ChatJob(
            user=principal.id,
            model=name,
            request=request.model_copy(update={"model": name}),
            prompt_tokens=self.counter.prompt(request),
            deadline=self.scheduler.clock() + self.settings.queue_timeout_seconds,
        )
        largest = self.context_length(name, servers)
        if job.prompt_tokens >= largest:
            error = InvalidRequest(
                f"the prompt has about {job.prompt_tokens} tokens; the largest context any worker "
                f"serving {name} offers is {largest}"
            )
            error.code = "context_length_exceeded"
            raise error
        await self._admit(principal, job.prompt_tokens)
        try:
            self.scheduler.submit(job)
        except QueueFull as exc:
            raise RateLimited(f"the gateway is saturated: {exc}", retry_after=5) from exc
        try:
            yield job
        finally:
            self.scheduler.cancel(job.id)
            # Accounting happens after the response, off the request's path (see ``account``).
            prompt, completion = self.ledger.tokens(job)
            self.ledger.hold(principal, job, prompt, completion)
            self._after.put_nowait((principal, request, job, conversation))
            if principal.key is not None:
                self.limiter.charge(principal.key.id, completion)

    async def account(self) -> None:
        """Write finished requests to the ledger and conversations to memory, forever. A pass starts
        a moment after a request finishes and takes everything finished by then: one transaction
        per batch instead of per request, and no write work between a request and the next.
        Budgets stay exact meanwhile: the ledger holds unwritten credits in memory."""
        while True:
            batch = [await self._after.get()]
            await anyio.sleep(_WRITE_DELAY)
            await self._write(self._drain(batch))

    async def flush(self) -> None:
        """Write whatever finished requests are still waiting (on shutdown)."""
        while not self._after.empty():
            await self._write(self._drain([]))

    def _drain(self, batch: list[Finished]) -> list[Finished]:
        while len(batch) < _WRITE_BATCH and not self._after.empty():
            batch.append(self._after.get_nowait())
        return batch

    async def _write(self, batch: list[Finished]) -> None:
        with anyio.CancelScope(shield=True):
            try:
                await self.ledger.record([(principal, job) for principal, _, job, _ in batch])
            except Exception:
                # Keep what can be kept: one request at a time, so one bad row loses only itself.
                logger.warning("a batched usage write failed; writing one by one", exc_info=True)
                for principal, _, job, _ in batch:
                    try:
                        await self.ledger.record([(principal, job)])
                    except Exception:
                        logger.exception("could not record the usage of %s", job.id)
            await self._remember(batch)

    async def _remember(self, batch: list[Finished]) -> None:
        """Store each new user turn and its reply in the caller's conversation thread."""
        if self.memory is None:
            return
        drafts: dict[tuple[str, bytes], tuple[Principal, list[MemoryDraft]]] = {}
        for principal, request, job, conversation in batch:
            if conversation is None or job.outcome != "ok" or principal.l2_key is None:
                continue
            mine = drafts.setdefault((principal.id, principal.l2_key), (principal, []))[1]
            mine.extend(_turns(request, job, conversation))
        for principal, items in drafts.values():
            for start in range(0, len(items), self.memory.settings.max_batch):
                try:
                    await self.memory.store_many(
                        principal, items[start : start + self.memory.settings.max_batch]
                    )
                except Exception:  # one caller's turns must not stop everyone's accounting
                    logger.exception("could not store conversation turns of %s", principal.id)

    async def _admit(self, principal: Principal, prompt_tokens: int) -> None:
        key = principal.key
        if key is None:
            return
        if key.budget is not None:
            spent = await self.ledger.spent(principal)
            if spent + prompt_tokens > key.budget:
                raise BudgetExhausted(f"API key {key.id} has used {spent:g} of its {key.budget:g} credits")
        decision = self.limiter.check(key.id, key.rpm, key.tpm, prompt_tokens)
        if not decision.allowed:
            raise RateLimited(
                f"API key {key.id} is limited to {decision.reason}", retry_after=decision.retry_after
            )

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


__all__ = ["Gateway", "ModelStatus"]
