"""The books: each finished request's usage, and its captured conversation turns, written durably.

Usage is written within ``pool.ledger_delay_ms`` of the answer, in transactions shared with the
other requests finishing around it: a node killed outright loses at most the usage of the answers
completed in that window and in the write under way. With a delay of 0, or once more than
``BACKLOG_LIMIT`` requests are waiting to be written (the store is slow or failing), an answer
waits for its own write instead, so the backlog stays bounded and a failed write fails its request
with ``storage_unavailable`` rather than leaving it unpaid. A deferred write that fails because the
store is unavailable is tried again every ``RETRY_SECONDS`` until it succeeds or the node stops;
its credits keep counting against the caller's budget meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

from noosphere.auth.principal import Principal
from noosphere.config import PoolSettings
from noosphere.errors import StorageUnavailable
from noosphere.groupcommit import GroupCommit
from noosphere.memory.model import CONVERSATION_KIND, MemoryDraft
from noosphere.memory.service import MemoryService
from noosphere.pool.jobs import ChatJob
from noosphere.pool.ledger import Ledger
from noosphere.pool.protocol import JobRequest

logger = logging.getLogger(__name__)

WRITE_BATCH = 1000  # finished requests written in one transaction, at most
BACKLOG_LIMIT = 1000  # requests waiting to be written before answers wait for their own write
RETRY_SECONDS = 1.0


@dataclass(frozen=True)
class Admitted:
    """A running request as its settlement needs it: who pays, what was asked, what was reserved."""

    principal: Principal
    request: JobRequest
    conversation: str | None
    reserved: float


Finished = tuple[Admitted, ChatJob]


class Books:
    def __init__(self, ledger: Ledger, settings: PoolSettings, memory: MemoryService | None = None) -> None:
        self.ledger = ledger
        self.settings = settings
        self.memory = memory
        self._delay = settings.ledger_delay_ms / 1000
        self._commit: GroupCommit[Finished, Exception | None] = GroupCommit(
            self._write, WRITE_BATCH, self._delay
        )
        self.unwritten = 0  # requests added and not yet written or given up
        self._retrying: list[Finished] = []
        self._retry: asyncio.TimerHandle | None = None
        self._closing = False

    async def write(self, admitted: Admitted, job: ChatJob) -> None:
        """Record a finished request: within the delay, or before returning when the delay is 0 or
        the backlog is full. ``StorageUnavailable`` when a write this call waits for fails."""
        deferred = self._delay > 0 and self.unwritten < BACKLOG_LIMIT and not self._closing
        written = self._add((admitted, job), deferred)
        if deferred:
            return
        (failure,) = await asyncio.shield(written)
        if failure is not None:
            raise StorageUnavailable(f"the usage of this request could not be recorded: {failure}")

    async def close(self) -> None:
        """Write what is waiting (one last try for failed writes), then wait for every write."""
        self._closing = True
        if self._retry is not None:
            self._retry.cancel()
        self._try_again()
        await self._commit.close()

    def _add(self, item: Finished, deferred: bool) -> asyncio.Future[list[Exception | None]]:
        self.unwritten += 1
        written = self._commit.add([item])
        written.add_done_callback(partial(self._settled, item, deferred))
        return written

    def _settled(
        self, item: Finished, deferred: bool, written: asyncio.Future[list[Exception | None]]
    ) -> None:
        self.unwritten -= 1
        failure = None if written.cancelled() else (written.exception() or written.result()[0])
        if failure is None:
            return
        admitted, job = item
        if deferred and isinstance(failure, StorageUnavailable) and not self._closing:
            self._retrying.append(item)
            self.unwritten += 1
            if self._retry is None:
                logger.warning("usage writes failed (%s); trying again in %gs", failure, RETRY_SECONDS)
                self._retry = asyncio.get_running_loop().call_later(RETRY_SECONDS, self._try_again)
            return
        if deferred:  # its answer is delivered: say loudly what the books miss
            prompt, completion = self.ledger.tokens(job)
            logger.error(
                "the usage of %s (%s, model %s, %d prompt and %d completion tokens) is lost: %s",
                job.id,
                admitted.principal.account,
                job.model,
                prompt,
                completion,
                failure,
            )
        self.ledger.abandon(admitted.principal, job)

    def _try_again(self) -> None:
        waiting, self._retrying, self._retry = self._retrying, [], None
        self.unwritten -= len(waiting)
        for item in waiting:
            self._add(item, True)

    async def _write(self, batch: list[Finished]) -> list[Exception | None]:
        """One transaction for the batch; a failing batch is written one request at a time, so one
        bad row fails only its own request."""
        try:
            await self.ledger.record([(a.principal, job) for a, job in batch])
            results: list[Exception | None] = [None] * len(batch)
        except Exception:
            logger.warning("a batched usage write failed; writing one by one", exc_info=True)
            results = []
            for admitted, job in batch:
                try:
                    await self.ledger.record([(admitted.principal, job)])
                    results.append(None)
                except Exception as exc:
                    logger.exception("could not record the usage of %s", job.id)
                    results.append(exc)
        await self._remember([item for item, failed in zip(batch, results, strict=True) if failed is None])
        return results

    async def _remember(self, batch: list[Finished]) -> None:
        """Store each new user turn and its reply in the caller's conversation thread, for callers
        that opted in (``noosphere user create --conversations``, ``key create --conversations``)
        unless the node keeps no conversations (``pool.conversations: off``)."""
        if self.memory is None or self.settings.conversations == "off":
            return
        ttl = self.settings.conversation_ttl_days
        expires = datetime.now(UTC) + timedelta(days=ttl) if ttl else None
        drafts: dict[tuple[str, bytes], tuple[Principal, list[MemoryDraft]]] = {}
        for admitted, job in batch:
            principal, conversation = admitted.principal, admitted.conversation
            if (
                conversation is None
                or job.outcome != "ok"
                or not principal.capture
                or principal.l2_key is None
            ):
                continue
            mine = drafts.setdefault((principal.id, principal.l2_key), (principal, []))[1]
            mine.extend(_turns(admitted.request, job, conversation, expires))
        for principal, items in drafts.values():
            for start in range(0, len(items), self.memory.settings.max_batch):
                try:
                    await self.memory.store_many(
                        principal, items[start : start + self.memory.settings.max_batch]
                    )
                except Exception:  # one caller's turns must not fail everyone's accounting
                    logger.exception("could not store conversation turns of %s", principal.id)


def _turns(
    request: JobRequest, job: ChatJob, conversation: str, expires_at: datetime | None
) -> list[MemoryDraft]:
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
            expires_at=expires_at,
        )
        for role, text in texts
    ]


__all__ = ["BACKLOG_LIMIT", "Admitted", "Books", "Finished"]
