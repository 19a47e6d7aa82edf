"""A chat job as the scheduler tracks it, and the events its requester receives."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from enum import StrEnum

from noosphere.ids import unique_hex
from noosphere.pool.protocol import Chunk, Done, Failed, JobRequest, Usage

JobEvent = Chunk | Done | Failed


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"


@dataclass(eq=False)
class ChatJob:
    user: str  # fairness key: the calling principal
    model: str  # resolved model name
    request: JobRequest
    prompt_tokens: int  # the gateway's own count
    deadline: float  # monotonic time by which it must have started
    id: str = field(default_factory=lambda: "job_" + unique_hex())
    state: JobState = JobState.QUEUED
    worker_id: str | None = None
    completion_tokens: int = 0  # tokens streamed so far, as the chunks say
    spilled: bool = False  # ran on an upstream backend
    worker_account: str | None = None  # the ledger account of the worker that ran it
    output: list[str] = field(default_factory=list)  # text and tool-call pieces, for counting
    output_tokens: int | None = None  # the gateway's count of the output, once it is final
    reported: Usage | None = None  # the worker's own usage figures
    outcome: str = "pending"  # ok | failed:<code> | cancelled
    bulk: bool = False  # a chat completion, held back while agents' calls need the loop (scheduler.py)
    holds_slot: bool = False  # a bulk job counted as running, until its requester releases it
    pinned_worker: str | None = None  # only this worker may run it (the checker's probes)
    via: tuple[str, ...] = ()  # nodes that forwarded it here, first first (federation/forwarding.py)
    local_only: bool = False  # only this process's own workers (a job another cluster process sent)
    fair: bool = True  # counts toward its user's fairness counter (not where another process counts it)
    max_credits: float = float("inf")  # what it reserved of a budget: it never costs more
    progressed_at: float = 0.0  # monotonic time it started or last streamed a token
    # Scheduler clock readings, for the node's metrics: queued, started on a worker, first token, finished.
    submitted_at: float = 0.0
    started_at: float | None = None
    first_token_at: float | None = None
    finished_at: float | None = None
    worker_name: str | None = None  # the worker that ran it, by name
    events: asyncio.Queue[JobEvent] = field(default_factory=asyncio.Queue)
