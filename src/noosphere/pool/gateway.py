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
    NoosphereError,
    RateLimited,
)
from noosphere.memory.model import CONVERSATION_KIND, MemoryDraft
from noosphere.memory.service import MemoryService
from noosphere.pool.checker import Checker
from noosphere.pool.jobs import ChatJob, JobEvent
from noosphere.pool.ledger import Ledger
from noosphere.pool.limits import RateLimiter
from noosphere.pool.protocol import Failed, JobRequest
from noosphere.pool.scheduler import QueueFull, Scheduler
from noosphere.pool.tokens import TokenCounter

logger = logging.getLogger(__name__)


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
        self._after: asyncio.Queue[tuple[Principal, JobRequest, ChatJob, str | None]] = asyncio.Queue()

    def resolve(self, model: str) -> str:
        """The served model a request names (directly or by alias). Never another model."""
        name = self.settings.aliases.get(model, model)
        if name not in self.scheduler.models():
            known = sorted(set(self.scheduler.models()) | set(self.settings.aliases))
            raise ModelNotFound(
                f"no worker or upstream serves model {model!r}"
                + (f"; available: {', '.join(known)}" if known else "; no models are available yet")
            )
        return name

    def models(self) -> list[ModelStatus]:
        aliases: dict[str, list[str]] = {}
        for alias, target in self.settings.aliases.items():
            aliases.setdefault(target, []).append(alias)
        out = []
        for name, servers in sorted(self.scheduler.models().items()):
            out.append(
                ModelStatus(
                    id=name,
                    aliases=sorted(aliases.get(name, [])),
                    workers=sum(not w.upstream for w in servers),
                    upstreams=sum(w.upstream for w in servers),
                    slots=sum(w.capacity for w in servers),
                    free_slots=sum(w.free_slots for w in servers),
                    context_length=max(w.models[name].context_length for w in servers),
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
        name = self.resolve(request.model)
        job = ChatJob(
            user=principal.id,
            model=name,
            request=request.model_copy(update={"model": name}),
            prompt_tokens=self.counter.prompt(request),
            deadline=self.scheduler.clock() + self.settings.queue_timeout_seconds,
        )
        largest = max(w.models[name].context_length for w in self.scheduler.models()[name])
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
        """Write finished requests to the ledger and conversations to memory, forever."""
        while True:
            await self._write(await self._after.get())

    async def flush(self) -> None:
        """Write whatever finished requests are still waiting (on shutdown)."""
        while not self._after.empty():
            await self._write(self._after.get_nowait())

    async def _write(self, item: tuple[Principal, JobRequest, ChatJob, str | None]) -> None:
        principal, request, job, conversation = item
        with anyio.CancelScope(shield=True):
            try:
                await self.ledger.record(principal, job)
                if conversation is not None and job.outcome == "ok":
                    await self._remember(principal, request, job, conversation)
            except Exception:
                logger.exception("could not account for %s", job.id)

    async def _remember(
        self, principal: Principal, request: JobRequest, job: ChatJob, conversation: str
    ) -> None:
        """Store the new user turn and the reply in the caller's conversation thread."""
        if self.memory is None or principal.l2_key is None:
            return
        asked = next((m for m in reversed(request.messages) if m.get("role") == "user"), None)
        turns = []
        if asked is not None and isinstance(asked.get("content"), str) and asked["content"].strip():
            turns.append(asked["content"])
        reply = "".join(job.output)
        if reply.strip():
            turns.append(reply)
        drafts = [
            MemoryDraft(
                content=text,
                kind=CONVERSATION_KIND,
                thread_id=conversation,
                metadata={
                    "role": "user" if i == 0 and asked is not None else "assistant",
                    "model": job.model,
                },
            )
            for i, text in enumerate(turns)
        ]
        try:
            await self.memory.store_many(principal, drafts)
        except NoosphereError:
            logger.exception("could not store conversation %s", conversation)

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
        """Expire overdue queued jobs and silent workers, forever."""
        while True:
            await anyio.sleep(period)
            self.scheduler.expire_queued()
            self.scheduler.expire_silent_workers()


__all__ = ["Gateway", "ModelStatus"]
