"""``noosphere jobs``: what the scheduler runs, its recent runs, and running a job now."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from noosphere.cli.common import (
    ConfigOpt,
    DataDirOpt,
    JsonOpt,
    TokenOpt,
    UrlOpt,
    ask_node,
    console,
    emit_json,
    opened_node,
    record_command,
    run,
    settings_from,
)
from noosphere.server.jobs_api import JobRunOut

jobs_app = typer.Typer(
    callback=record_command, help="Scheduled jobs (cron and topic triggers).", no_args_is_help=True
)


@jobs_app.command("list")
def list_jobs(config: ConfigOpt = None, data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """The jobs the node's settings schedule (built-in and added)."""
    settings = settings_from(config, data_dir)
    jobs = [
        j.model_dump(exclude_none=True)
        for j in settings.scheduler.effective_jobs()
        if j.name != "worker_checker" or settings.pool.checker  # no checker, nothing to schedule
    ]
    if as_json:
        emit_json(jobs)
        return
    table = Table("job", "cron", "topic", "runs")
    for job in jobs:
        what = f"agent {job['agent']}: {job['task']}" if "agent" in job else "built-in"
        table.add_row(job["name"], job.get("cron", "-"), job.get("topic", "-"), what)
    console.print(table)
    if not settings.scheduler.enabled:
        console.print("[yellow]the scheduler is off on this node (scheduler.enabled: false)[/yellow]")


@jobs_app.command("runs")
def runs(
    job: Annotated[str | None, typer.Argument(help="Only this job's runs.")] = None,
    limit: Annotated[int, typer.Option(help="Runs to show.")] = 20,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Recent job runs, newest first, with their outcome."""

    async def go() -> list[JobRunOut]:
        async with opened_node(config, data_dir, token, check_embedder=False) as node:
            return [JobRunOut.of(r) for r in await node.store.job_runs(job, limit)]

    rows = run(go)
    if as_json:
        emit_json([r.model_dump(mode="json") for r in rows])
        return
    table = Table("job", "tick", "node", "started", "outcome", "detail")
    for r in rows:
        outcome = r.outcome if r.outcome in ("ok", "running") else f"[red]{r.outcome}[/red]"
        started = r.started_at.isoformat(timespec="seconds")
        table.add_row(r.job, r.tick, r.node, started, outcome, (r.detail or "")[:80])
    console.print(table)


@jobs_app.command("run")
def run_now(
    name: str,
    url: UrlOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a job now on the running node, outside its schedule, and wait for it."""
    settings = settings_from(config, data_dir)
    answer = ask_node(settings, url, token, "POST", f"/api/v1/jobs/{name}/run", timeout=3600)
    result = JobRunOut.model_validate(answer)
    if as_json:
        emit_json(result.model_dump(mode="json"))
        return
    colour = "green" if result.outcome == "ok" else "red"
    console.print(f"{result.job}: [{colour}]{result.outcome}[/{colour}] {result.detail or ''}")
    if result.outcome != "ok":
        raise typer.Exit(1)
