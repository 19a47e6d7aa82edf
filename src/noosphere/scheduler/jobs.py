"""The jobs a node schedules: the built-in ones (memory GC, historian, worker checker) and agent
jobs (run an agent on a fixed task), built from ``scheduler.jobs``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from noosphere.config import JobSettings, SchedulerSettings
from noosphere.node import Node
from noosphere.pool.checker import Checker
from noosphere.scheduler.historian import Historian
from noosphere.scheduler.scheduler import Job, JobRun, job_principal

if TYPE_CHECKING:
    from noosphere.agents.runtime import Runtime


def memory_gc(node: Node) -> JobRun:
    async def run(_: Mapping[str, Any]) -> str:
        report = await node.memory.collect_garbage()
        purged = await node.bus.purge()
        return (
            f"purged {report.expired} expired memories, {report.tombstones} tombstones, "
            f"{purged} old bus records"
        )

    return run


def worker_checker(checker: Checker) -> JobRun:
    async def run(_: Mapping[str, Any]) -> str:
        results = await checker.sweep()
        healthy = sum(r.ok for r in results)
        return f"checked {len(results)} workers, {healthy} healthy"

    return run


def compact_conversations(historian: Historian) -> JobRun:
    async def run(_: Mapping[str, Any]) -> str:
        return await historian.run()

    return run


def agent_job(runtime: Runtime, spec: JobSettings) -> JobRun:
    agent, task = spec.agent, spec.task
    assert agent is not None and task is not None  # the settings require both

    async def run(payload: Mapping[str, Any]) -> str:
        # A triggering message's payload reaches the agent as data, apart from its task.
        data = dict(payload) if payload else None
        result = await runtime.run(agent, task, session=f"job:{spec.name}", data=data)
        return f"{result.status} after {result.steps} steps: {result.answer[:300]}"

    return run


def build_jobs(
    settings: SchedulerSettings, node: Node, runtime: Runtime, checker: Checker | None
) -> list[Job]:
    """The enabled jobs of ``settings``; the historian thinks with the runtime's model, and the
    worker checker runs only where the pool checks workers."""
    jobs = []
    for spec in settings.effective_jobs():
        local = False
        if spec.name == "memory_gc":
            run = memory_gc(node)
        elif spec.name == "historian":
            historian = Historian(
                node.memory,
                runtime.model,
                runtime.default_model,
                settings.historian,
                job_principal("historian"),
            )
            run = compact_conversations(historian)
        elif spec.name == "worker_checker":
            if checker is None:
                continue
            run, local = worker_checker(checker), True
        else:
            run = agent_job(runtime, spec)
        jobs.append(Job(spec.name, run, spec.cron, spec.topic, local=local, senders=tuple(spec.senders)))
    return jobs


__all__ = ["agent_job", "build_jobs", "compact_conversations", "memory_gc", "worker_checker"]
