"""The scheduler: runs jobs on cron ticks and on messages published to a topic.

Each tick is claimed in the store before it runs (``claim_job_run``: an insert on (job, tick)),
so it runs once even when several node processes share the store, and a redelivered trigger
message does not run a job twice. Node-local jobs (the worker checker: each node checks its own
workers) claim ticks under the node's id. A tick missed while the node was down runs once, not
once per missed tick. A job still running when its next tick comes skips that tick.

Jobs act as their own L0 principal (``job:<name>``) and pass policy like any agent's tool call:
the call is ``job(<name>)``, so ``deny: ["job(historian)"]`` stops one and an ``ask`` rule makes
a person approve each run. Every run is audited and recorded with its outcome.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any

import anyio
import anyio.abc
from croniter import croniter

from noosphere.auth.permissions import JOB_PREFIX
from noosphere.auth.principal import Level, Principal, PrincipalKind
from noosphere.digest import sha256_json
from noosphere.errors import Conflict, NoosphereError, NotFound, PermissionDenied, Unavailable
from noosphere.governance.gate import Clearance, Gate
from noosphere.governance.policy import Caller, ToolCall
from noosphere.node import Node
from noosphere.store.contract import ApprovalRecord, JobRunRecord

logger = logging.getLogger(__name__)

MAX_SLEEP_SECONDS = 30.0  # the loop wakes at least this often (clock changes, a late start)
CATCH_UP_LIMIT = 10_000  # cron ticks walked to find the latest missed one

Clock = Callable[[], datetime]
JobRun = Callable[[Mapping[str, Any]], Awaitable[str]]  # trigger payload -> what it did, in words


@dataclass(frozen=True)
class Job:
    name: str
    run: JobRun
    cron: str | None = None
    topic: str | None = None
    impact: float = 0.2
    local: bool = False  # node-local work: every node runs its own ticks
    senders: tuple[str, ...] = ("admin",)  # bus addresses (globs) whose messages may fire it

    def fired_by(self, sender: str) -> bool:
        return any(fnmatchcase(sender, pattern) for pattern in self.senders)

    @property
    def principal(self) -> Principal:
        return job_principal(self.name)

    @property
    def mailbox(self) -> str:
        return self.principal.mailbox


def job_principal(name: str) -> Principal:
    """The principal a job acts as: ``job:<name>``, at level L0 (system)."""
    return Principal(f"{JOB_PREFIX}{name}", PrincipalKind.AGENT, f"{JOB_PREFIX}{name}", Level.L0)


def latest_tick(cron: str, after: datetime, now: datetime) -> datetime | None:
    """The latest fire time of ``cron`` in (after, now], or None."""
    ticks = croniter(cron, after)
    latest = None
    for _ in range(CATCH_UP_LIMIT):
        tick = ticks.get_next(datetime)
        if tick > now:
            break
        latest = tick
    return latest


def next_tick(cron: str, after: datetime) -> datetime:
    tick: datetime = croniter(cron, after).get_next(datetime)
    return tick


class JobScheduler:
    def __init__(
        self, node: Node, gate: Gate, jobs: list[Job], clock: Clock | None = None, node_id: str | None = None
    ) -> None:
        self.node = node
        self.gate = gate
        self.jobs = {job.name: job for job in jobs}
        self.clock = clock or (lambda: datetime.now(UTC))
        self.node_id = node_id or node.key.id  # several processes of one node differ here
        self.policy = node.settings.governance.policy()  # jobs have no rules of their own
        self.timeout = node.settings.scheduler.job_timeout_minutes * 60
        self._busy: set[str] = set()

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Listen to the trigger topics and fire cron ticks, until cancelled."""
        async with anyio.create_task_group() as group:
            for job in self.jobs.values():
                if job.topic:
                    await self.node.bus.subscribe(job.mailbox, job.topic)
                    group.start_soon(self._listen, job)
            task_status.started()
            last = self.clock()
            while True:
                now = self.clock()
                for job in self.jobs.values():
                    tick = latest_tick(job.cron, last, now) if job.cron else None
                    if tick is not None:
                        group.start_soon(self.fire, job.name, tick.isoformat(), {})
                last = now
                upcoming = [next_tick(job.cron, now) for job in self.jobs.values() if job.cron]
                wait = min([(t - now).total_seconds() for t in upcoming], default=MAX_SLEEP_SECONDS)
                await anyio.sleep(max(0.01, min(wait, MAX_SLEEP_SECONDS)))

    async def _listen(self, job: Job) -> None:
        wait = self.node.settings.bus.max_wait_seconds
        while True:
            try:
                for delivery in await self.node.bus.receive(job.mailbox, 10, wait):
                    envelope = delivery.envelope
                    if job.fired_by(envelope.sender):
                        await self.fire(job.name, f"msg:{envelope.id}", envelope.payload)
                    else:  # anyone may publish to a topic; only the job's named senders fire it
                        logger.warning("job %s: ignored a trigger from %s", job.name, envelope.sender)
                        await self.node.audit.append(
                            envelope.sender, "job", {"job": job.name, "event": "trigger_refused"}
                        )
                    await self.node.bus.ack(job.mailbox, [envelope.id])
            except NoosphereError as exc:
                logger.warning("job %s: listening on %s: %s (%s)", job.name, job.topic, exc.message, exc.code)
                await anyio.sleep(1)

    async def run_now(self, name: str) -> JobRunRecord:
        """Run ``name`` now, outside its schedule (a person asked), and return the run."""
        job = self.job(name)
        if name in self._busy:
            raise Conflict(f"job {name!r} is running; try again when it has finished")
        run = await self.fire(job.name, f"manual:{uuid.uuid4().hex[:12]}", {})
        if run is None:  # a fresh tick is never claimed before; only a store failure gets here
            raise Unavailable(f"the store could not record a run of job {name!r}; see the node's log")
        return run

    def job(self, name: str) -> Job:
        if name not in self.jobs:
            raise NotFound(f"no job named {name!r}")
        return self.jobs[name]

    def _key(self, job: Job, tick: str) -> str:
        return f"{self.node_id}@{tick}" if job.local else tick

    async def fire(self, name: str, tick: str, payload: Mapping[str, Any]) -> JobRunRecord | None:
        """Run job ``name`` for ``tick`` unless it is running or that tick was claimed already
        (then None). Its failures are recorded in the run, not raised."""
        job = self.job(name)
        if name in self._busy:
            logger.info("job %s: still running, skipping tick %s", name, tick)
            return None
        key = self._key(job, tick)
        self._busy.add(name)
        try:
            started = self.clock()
            if not await self.node.store.claim_job_run(name, key, self.node_id, started):
                return None  # another process (or an earlier delivery) ran this tick
            try:
                outcome, detail = await self._execute(job, key, payload)
            except anyio.get_cancelled_exc_class():  # the node is stopping: say so, not "running"
                outcome, detail = "cancelled", "the node stopped"
                with anyio.CancelScope(shield=True):
                    await self.node.store.finish_job_run(name, key, outcome, detail, self.clock())
                raise
            finished = self.clock()
            await self.node.store.finish_job_run(name, key, outcome, detail, finished)
            return JobRunRecord(name, key, self.node_id, started, outcome, finished, detail)
        except NoosphereError as exc:
            logger.warning("job %s: recording tick %s: %s (%s)", name, key, exc.message, exc.code)
            return None
        finally:
            self._busy.discard(name)

    @staticmethod
    async def _waiting(approval: ApprovalRecord) -> None:
        logger.warning(
            "job %s waits for a person: noosphere approvals approve %s", approval.subject, approval.id
        )

    async def _execute(self, job: Job, key: str, payload: Mapping[str, Any]) -> tuple[str, str]:
        caller = Caller(job.principal.name, Level.L0)
        args = {"tick": key, "payload": dict(payload)}
        call = ToolCall("job", job.name, job.impact, True)
        clearance: Clearance | None = None
        try:
            clearance = await self.gate.clear(
                self.policy, caller, call, args, session=f"job:{job.name}", on_wait=self._waiting
            )
            clearance.check(args)
            with anyio.fail_after(self.timeout):
                detail = await job.run(payload)
            outcome = "ok"
        except TimeoutError:
            outcome, detail = "failed", f"timeout: the run took longer than {self.timeout:g}s"
        except PermissionDenied as exc:
            outcome, detail = "denied", f"{exc.code}: {exc.message}"
        except NoosphereError as exc:
            outcome, detail = "failed", f"{exc.code}: {exc.message}"
        except Exception as exc:  # a job's own bug is recorded; the scheduler keeps running
            logger.exception("job %s failed", job.name)
            outcome, detail = "failed", f"{type(exc).__name__}: {exc}"
        if clearance is not None:
            await self.gate.record(caller, call, clearance, outcome, sha256_json(detail))
        logger.info("job %s (%s): %s: %s", job.name, key, outcome, detail)
        return outcome, detail


__all__ = ["Job", "JobScheduler", "job_principal", "latest_tick", "next_tick"]
