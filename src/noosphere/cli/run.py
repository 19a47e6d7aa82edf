"""``noosphere run AGENT "task"``: run an agent on a running node and follow its progress.

The model pool lives in the node process, so this talks to the node over REST (server-sent
events) rather than opening the store itself."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from noosphere.cli.client import fail, headers_for, segment
from noosphere.cli.options import ConfigOpt, DataDirOpt, JsonOpt, TokenOpt, UrlOpt, running
from noosphere.cli.output import console, emit_json
from noosphere.errors import NoosphereError


def _show(event: dict[str, Any]) -> None:
    data = event.get("data", {})
    kind = event.get("type")
    if kind == "started":
        console.print(f"[bold]{data['agent']}[/bold] on: {data['task']}")
    elif kind == "step":
        console.print(
            f"[dim]step {data['step']} ({data['tokens']} tokens)[/dim] {data.get('text') or ''}".rstrip()
        )
    elif kind == "tool_started":
        console.print(f"  → {data['tool']} {json.dumps(data.get('arguments'), ensure_ascii=False)}")
    elif kind == "approval_waiting":
        console.print(
            f"  [yellow]waiting for a person[/yellow]: noosphere approvals approve {data['approval_id']}"
        )
    elif kind == "tool_finished":
        outcome = data["outcome"]
        shown = "ok" if outcome == "ok" else f"[red]{outcome}[/red] {data.get('error', '')}"
        console.print(f"  ← {data['tool']}: {shown}")


def run_agent(
    agent: str,
    task: str,
    session: Annotated[
        str | None, typer.Option("--session", help="Continue a session (default: new).")
    ] = None,
    url: UrlOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run AGENT on TASK on the running node, streaming its progress; prints its answer."""
    import httpx  # streams server-sent events

    target = running(config, data_dir, url)
    base = target.url
    try:
        headers = headers_for(token or target.admin_token())
    except NoosphereError as exc:
        fail(exc.code, exc.message)
    body = {"task": task, "session": session, "stream": True}
    finished: dict[str, Any] | None = None
    try:
        with httpx.stream(
            "POST", f"{base}/api/v1/agents/{segment(agent)}/run", json=body, headers=headers, timeout=None
        ) as response:
            if response.status_code != 200:
                response.read()
                error = response.json().get("error", {})
                fail(str(error.get("code")), str(error.get("message")))
            for line in response.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                event = json.loads(line.removeprefix("data: "))
                if "error" in event:
                    fail(str(event["error"].get("code")), str(event["error"].get("message")))
                if as_json:
                    emit_json(event)
                else:
                    _show(event)
                if event.get("type") == "finished":
                    finished = event["data"]
    except httpx.HTTPError as exc:
        fail("unavailable", f"no node answering at {base} ({exc})")
    if finished is None:
        console.print("[red]error[/red]: the run ended without a result")
        raise typer.Exit(1)
    if not as_json:
        console.print(
            f"[bold]{finished['status']}[/bold] after {finished['steps']} steps, {finished['tokens']} tokens"
        )
        print(finished["answer"])
    if finished["status"] != "completed":
        raise typer.Exit(2)
