"""The historian: turns finished conversations into durable knowledge.

A conversation is a shared-zone thread (memories with the same ``thread_id``); it is finished
when nothing was added to it for ``idle_minutes``. For each finished thread not summarized up to
its last memory, the historian asks a model for a short summary and the decisions taken, and
stores them in the shared zone: one ``summary`` memory on the thread (metadata ``thread`` and
``through_seq``, so the next run knows how far it got), and each decision as a standalone
``decision`` memory (no thread, no expiry), next to any memory of kind ``decision`` the thread
already had, promoted the same way. The thread's own memories are left as they are: they keep
their own expiry, and the summary outlives them.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from noosphere.agents.model import ChatModel
from noosphere.auth.principal import Principal
from noosphere.config import HistorianSettings
from noosphere.errors import WorkerFailed
from noosphere.memory.model import ListQuery, Memory, MemoryDraft, Zone
from noosphere.memory.service import MemoryService
from noosphere.pool.protocol import JobRequest

logger = logging.getLogger(__name__)

SCAN_LIMIT = 5000  # memories read per run at most
TRANSCRIPT_CHARS = 6000  # of a thread, given to the model
DECISION = "DECISION:"
INSTRUCTIONS = (
    "You are the historian of a team of agents. Summarize the conversation below in two or three "
    "sentences. Then write each decision that was taken on its own line, starting with "
    f"'{DECISION} '. Write nothing else."
)


def parse(reply: str) -> tuple[str, list[str]]:
    """(summary, decisions) from the model's reply."""
    summary, decisions = [], []
    for line in reply.splitlines():
        text = line.strip().lstrip("-*• ").strip()
        if text.upper().startswith(DECISION):
            decision = text[len(DECISION) :].strip()
            if decision:
                decisions.append(decision)
        elif text:
            summary.append(text)
    return " ".join(summary), decisions


def transcript(items: list[Memory]) -> str:
    lines = [f"[{m.kind}] {m.owner}: {m.content}" for m in items]
    text = "\n".join(lines)
    return text if len(text) <= TRANSCRIPT_CHARS else "…" + text[-TRANSCRIPT_CHARS:]


class Historian:
    def __init__(
        self,
        memory: MemoryService,
        model: ChatModel,
        model_name: str,
        settings: HistorianSettings,
        principal: Principal,
    ) -> None:
        self.memory = memory
        self.model = model
        self.model_name = settings.model or model_name
        self.settings = settings
        self.principal = principal

    async def run(self, now: datetime | None = None) -> str:
        """Compact every finished thread; returns what it did, in words."""
        now = now or datetime.now(UTC)
        threads, done = await self._threads(now - timedelta(days=self.settings.lookback_days))
        idle = timedelta(minutes=self.settings.idle_minutes)
        compacted = promoted = 0
        for thread, items in sorted(threads.items()):
            if compacted >= self.settings.max_threads:
                break
            last = max(m.seq for m in items)
            if last <= done.get(thread, 0) or len(items) < self.settings.min_memories:
                continue
            if now - max(m.created_at for m in items) < idle:
                continue  # still going
            promoted += await self._compact(thread, sorted(items, key=lambda m: m.seq), last)
            compacted += 1
        return f"compacted {compacted} conversations, promoted {promoted} decisions"

    async def _threads(self, since: datetime) -> tuple[dict[str, list[Memory]], dict[str, int]]:
        """Shared memories by thread, and how far each thread was summarized (``through_seq``)."""
        threads: dict[str, list[Memory]] = defaultdict(list)
        done: dict[str, int] = {}
        cursor: int | None = None
        for _ in range(SCAN_LIMIT // 500):
            page = await self.memory.list_memories(
                self.principal, ListQuery(zones=[Zone.SHARED], since=since, limit=500, cursor=cursor)
            )
            for m in page.items:
                if m.kind == "summary" and isinstance(m.metadata.get("through_seq"), int):
                    thread = str(m.metadata.get("thread"))
                    done[thread] = max(done.get(thread, 0), int(m.metadata["through_seq"]))
                elif m.thread_id and m.invalid_at is None:
                    threads[m.thread_id].append(m)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        return threads, done

    async def _compact(self, thread: str, items: list[Memory], last: int) -> int:
        request = JobRequest(
            model=self.model_name,
            messages=[
                {"role": "system", "content": INSTRUCTIONS},
                {"role": "user", "content": transcript(items)},
            ],
            max_tokens=self.settings.summary_tokens,
            temperature=0,
        )
        reply = await self.model.chat(self.principal, request)
        summary, decisions = parse(reply.text)
        if not summary:
            raise WorkerFailed(f"the model wrote no summary of thread {thread!r}")
        decisions += [m.content for m in items if m.kind == "decision"]
        unique = list(dict.fromkeys(decisions))
        drafts = [
            MemoryDraft(
                content=summary,
                zone=Zone.SHARED,
                kind="summary",
                thread_id=thread,
                tags=["historian"],
                metadata={"thread": thread, "through_seq": last, "memories": len(items)},
                importance=0.7,
            ),
            *(
                MemoryDraft(
                    content=decision,
                    zone=Zone.SHARED,
                    kind="decision",
                    tags=["historian", "promoted"],
                    metadata={"thread": thread},
                    importance=0.8,
                )
                for decision in unique
            ),
        ]
        await self.memory.store_many(self.principal, drafts)
        logger.info("historian: thread %s, %d memories, %d decisions", thread, len(items), len(unique))
        return len(unique)


__all__ = ["Historian", "parse", "transcript"]
