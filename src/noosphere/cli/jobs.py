"""``noosphere jobs``: what the scheduler runs, its recent runs, and running a job now."""

from __future__ import annotations

from typing import Annotated

import typer

from noosphere.cli.client import api, segment
from noosphere.cli.options import (
    ConfigOpt,
    DataDirOpt,
    JsonOpt,
    TokenOpt,
    UrlOpt,
    call,
    record_command,
    running,
)
from noosphere.cli.output import console, emit_json, table

jobs_app = typer.Typer(
    callback=record_command, help="Scheduled jobs (cron and topic triggers).", no_args_is_help=True
)


@jobs_app.command("list")
def list_jobs(config: ConfigOpt = None, data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """The jobs the node's settings schedule (built-in and added)."""
    from noosphere.cli.common import settings_from

    settings = settings_from(config, data_dir)
    jobs = [
        j.model_dump(exclude_none=True)
        for j in settings.scheduler.effective_jobs()
        if j.name != "worker_checker" or settings.pool.checker  # no checker, nothing to schedule
    ]
    if as_json:
        emit_json(jobs)
        return
    shown = table("job", "cron", "topic", "runs")
    for job in jobs:
        what = f"agent {job['agent']}: {job['task']}" if "agent" in job else "built-in"
        shown.add_row(job["name"], job.get("cron", "-"), job.get("topic", "-"), what)
    console.print(shown)
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
    rows = call(config, data_dir, token, "GET", "/api/v1/jobs/runs", params={"job": job, "limit": limit})
    if as_json:
        emit_json(rows)
        return
    shown = table("job", "tick", "node", "started", "outcome", "detail")
    for r in rows:
        outcome = r["outcome"] if r["outcome"] in ("ok", "running") else f"[red]{r['outcome']}[/red]"
        shown.add_row(r["job"], r["tick"], r["node"], r["started_at"][:19], outcome, (r["detail"] or "")[:80])
    console.print(shown)


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
    with api(running(config, data_dir, url), token) as node:
        result = node.call("POST", f"/api/v1/jobs/{segment(name)}/run", timeout=3600)
    if as_json:
        emit_json(result)
        return
    colour = "green" if result["outcome"] == "ok" else "red"
    console.print(f"{result['job']}: [{colour}]{result['outcome']}[/{colour}] {result['detail'] or ''}")
    if result["outcome"] != "ok":
        raise typer.Exit(1)
