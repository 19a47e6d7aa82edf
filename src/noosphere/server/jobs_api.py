"""REST: scheduled jobs (admin): what is scheduled, recent runs, and running a job now."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from noosphere.server.deps import NodeDep, SchedulerDep
from noosphere.store.contract import JobRunRecord

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])


class JobOut(BaseModel):
    name: str
    cron: str | None
    topic: str | None
    local: bool = Field(description="Each node runs its own ticks (node-local work).")
    principal: str = Field(description="Who it acts as.")


class JobRunOut(BaseModel):
    job: str
    tick: str = Field(description="The cron time, `msg:<id>` of its trigger, or `manual:<id>`.")
    node: str
    started_at: datetime
    finished_at: datetime | None
    outcome: str = Field(description="running | ok | failed | denied | cancelled")
    detail: str | None

    @classmethod
    def of(cls, record: JobRunRecord) -> JobRunOut:
        return cls.model_validate(record, from_attributes=True)


@router.get("", summary="The jobs this node schedules")
async def list_jobs(scheduler: SchedulerDep) -> list[JobOut]:
    return [
        JobOut(name=j.name, cron=j.cron, topic=j.topic, local=j.local, principal=j.principal.id)
        for j in scheduler.jobs.values()
    ]


@router.get("/runs", summary="Recent job runs, newest first")
async def list_runs(
    node: NodeDep,
    job: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> list[JobRunOut]:
    return [JobRunOut.of(r) for r in await node.store.job_runs(job, limit)]


@router.post("/{name}/run", summary="Run a job now, outside its schedule; returns the run")
async def run_job(name: str, scheduler: SchedulerDep) -> JobRunOut:
    return JobRunOut.of(await scheduler.run_now(name))
