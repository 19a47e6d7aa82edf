"""Scheduled jobs: cron and topic triggers, a store-backed lock per tick, policy and audit."""

from noosphere.scheduler.historian import Historian
from noosphere.scheduler.jobs import build_jobs
from noosphere.scheduler.scheduler import Job, JobScheduler, job_principal

__all__ = ["Historian", "Job", "JobScheduler", "build_jobs", "job_principal"]
