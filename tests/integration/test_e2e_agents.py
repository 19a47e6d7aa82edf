"""End to end with the real thing: SmolLM2-135M through llama.cpp as the node's pool worker, a real
MCP server subprocess lending a tool, the store, the bus, policy, human checkpoints over REST and
the signed audit log, checked afterwards by ``noosphere audit verify``.

An L1 planner delegates to a served L2 scribe; the scribe's tool (``notes__add_note``) needs a
person's approval. First a person approves it through the API and the task completes; then nobody
answers, the approval times out (recorded as ``timeout``), and the call does not run.

The local backend constrains sampling to the offered tools' JSON schemas (a llama.cpp grammar), so
even the 135M model writes a well-formed call whatever the CPU's numerics make of its tokens; each
agent's plan calls its tool, then replies in text."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from noosphere.embeddings.minilm import MiniLMEmbedder
from noosphere.pool.backends.llama import bundled_smollm2
from tests.integration.conftest import Live, serve_live
from tests.integration.test_cli import noosphere

pytestmark = pytest.mark.slow

MODEL = "smollm2-135m-instruct"
NOTES_SERVER = Path(__file__).parents[1] / "service" / "notes_mcp_server.py"


def _settings(notes: Path) -> dict[str, Any]:
    server = {"name": "notes", "command": sys.executable, "args": [str(NOTES_SERVER)]}
    server["env"] = {"NOTES_FILE": str(notes)}
    return {
        "governance": {"rules": {"ask": ["notes__add_note(*)"]}, "approval_timeout_minutes": 0.25},
        "runtime": {"mcp_servers": [server], "reply_tokens": 128},
    }


def _agents(http: httpx.Client) -> None:
    planner = {
        "name": "planner",
        "level": "L1",
        "soul": "You hand every task to the scribe, in the same words.",
        "tools": ["delegate"],
        "plan": ["delegate", "reply"],
        "max_steps": 2,
        "temperature": 0,
    }
    scribe = {
        "name": "scribe",
        "level": "L2",
        "soul": "You write notes.",
        "tools": ["notes__*"],
        "plan": ["notes__add_note", "reply"],
        "max_steps": 2,
        "temperature": 0,
        "serve": True,
    }
    for profile in (planner, scribe):
        assert http.post("/api/v1/agents", json=profile).status_code == 201


def _until(condition: Callable[[], Any], what: str, seconds: float = 120) -> Any:
    deadline = time.monotonic() + seconds
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return value


def _run(live: Live, task: str) -> Future[dict[str, Any]]:
    """Start the planner on ``task`` in a thread (the run blocks while approvals wait)."""

    def go() -> dict[str, Any]:
        response = httpx.post(
            f"{live.url}/api/v1/agents/planner/run",
            json={"task": task, "stream": False},
            headers={"Authorization": f"Bearer {live.admin_token}"},
            timeout=300,
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    return ThreadPoolExecutor(1).submit(go)


def test_a_delegated_task_waits_for_a_person_then_completes_and_a_second_times_out(
    tmp_path: Path, minilm: MiniLMEmbedder
) -> None:
    notes = tmp_path / "notes.txt"
    with serve_live(tmp_path / "node", minilm, local_model=bundled_smollm2(), **_settings(notes)) as live:
        data = live.settings.data_dir
        headers = {"Authorization": f"Bearer {live.admin_token}"}
        with httpx.Client(base_url=live.url, headers=headers, timeout=60) as http:
            _until(
                lambda: "notes__add_note" in {t["name"] for t in http.get("/api/v1/tools").json()}, "tools"
            )
            _agents(http)

            # 1. A person approves the scribe's call through the API; the task completes.
            first = _run(live, "Note that the release is on Friday.")
            pending = _until(
                lambda: http.get("/api/v1/approvals", params={"status": "pending"}).json(),
                "the scribe's approval request",
            )
            (approval,) = pending
            assert (approval["requester"], approval["tool"]) == ("scribe", "notes__add_note")
            decided = http.post(f"/api/v1/approvals/{approval['id']}/approve", json={"note": "fine"})
            assert decided.json()["status"] == "approved"
            result = first.result(timeout=300)
            assert result["calls"][0] == {"tool": "delegate", "outcome": "ok"}
            (task,) = http.get("/api/v1/tasks").json()
            assert (task["delegator"], task["assignee"], task["status"]) == ("planner", "scribe", "completed")
            written = notes.read_text()
            assert written.strip(), "the approved call ran in the MCP server"

            # 2. Nobody answers: the approval times out and the call does not run.
            second = _run(live, "Note that the meeting is on Tuesday.")
            pending = _until(
                lambda: http.get("/api/v1/approvals", params={"status": "pending"}).json(),
                "the second approval request",
            )
            second.result(timeout=300)
            timed_out = http.get(f"/api/v1/approvals/{pending[0]['id']}").json()
            assert timed_out["status"] == "timeout"
            assert notes.read_text() == written  # the timed-out call never ran
            tasks = http.get("/api/v1/tasks").json()
            assert len(tasks) >= 2 and tasks[0]["assignee"] == "scribe"
    verified = noosphere(data, "audit", "verify")
    assert verified.returncode == 0, verified.stderr
    entries = json.loads(noosphere(data, "audit", "show", "--limit", "1000", "--json").stdout)
    approvals = [e["body"]["event"] for e in entries if e["kind"] == "approval"]
    assert approvals[:2] == ["requested", "approved"] and "timeout" in approvals
    tools = [(e["actor"], e["body"]["tool"], e["body"]["outcome"]) for e in entries if e["kind"] == "tool"]
    assert ("scribe", "notes__add_note", "ok") in tools
    assert ("planner", "delegate", "ok") in tools
