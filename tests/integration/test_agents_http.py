"""Agents over REST: profiles, running an agent through the real pool path (gateway, scheduler,
an in-process worker with a fake backend), streamed progress, and delegated tasks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from noosphere.config import load_settings
from noosphere.embeddings.minilm import MiniLMEmbedder
from noosphere.server.app import create_app
from noosphere.testing import FakeModel, until
from tests.integration.conftest import serve_live
from tests.integration.test_cli import noosphere


@pytest.fixture
def app_client(tmp_path: Path, minilm: MiniLMEmbedder) -> Iterator[TestClient]:
    settings = load_settings(None, data_dir=tmp_path / "node", pool={"checker": False})
    backends = [
        ("talker", FakeModel(model="talker", reply="The answer is 42.")),
        ("storer", FakeModel(model="storer", tool_calls=[("memory_store", '{"content": "seen it"}')])),
    ]
    with TestClient(create_app(settings, embedder=minilm, backends=backends)) as client:
        token = (settings.data_dir / "admin-token").read_text().strip()
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


def _events(lines: Iterator[str]) -> list[Any]:
    out = []
    for line in lines:
        if line.startswith("data: "):
            data = line.removeprefix("data: ")
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def test_agents_are_created_with_profiles_listed_shown_and_deleted(app_client: TestClient) -> None:
    created = app_client.post(
        "/api/v1/agents",
        json={"name": "coder", "level": "L2", "capabilities": ["Python", "review"], "soul": "You code."},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["token"].startswith("ns_")
    assert (body["id"], body["capabilities"], body["zones"]) == (
        "agent:coder",
        ["python", "review"],
        ["private", "shared"],
    )
    assert app_client.get("/api/v1/agents/coder").json()["soul"] == "You code."
    assert [a["name"] for a in app_client.get("/api/v1/agents").json()] == ["coder"]
    bad = app_client.post("/api/v1/agents", json={"name": "x", "level": "L9"})
    assert bad.status_code == 422
    taken = app_client.post("/api/v1/agents", json={"name": "coder"})
    assert (taken.status_code, taken.json()["error"]["code"]) == (409, "conflict")
    assert app_client.delete("/api/v1/agents/coder").status_code == 204
    assert app_client.get("/api/v1/agents/coder").status_code == 404


def test_running_an_agent_streams_progress_and_answers(app_client: TestClient) -> None:
    assert app_client.post("/api/v1/agents", json={"name": "oracle", "model": "talker"}).status_code == 201
    with app_client.stream(
        "POST", "/api/v1/agents/oracle/run", json={"task": "What is the answer?"}
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = _events(response.iter_lines())
    assert [e["type"] for e in events[:-1]] == ["started", "step", "finished"]
    assert events[-1] == "[DONE]"
    finished = events[-2]["data"]
    assert (finished["status"], finished["answer"], finished["steps"]) == (
        "completed",
        "The answer is 42.",
        1,
    )
    assert finished["tokens"] > 0

    whole = app_client.post("/api/v1/agents/oracle/run", json={"task": "again", "stream": False})
    assert (whole.json()["status"], whole.json()["answer"]) == ("completed", "The answer is 42.")
    missing = app_client.post("/api/v1/agents/nobody/run", json={"task": "x"})
    assert missing.status_code == 404


def test_a_model_calling_tools_runs_them_until_its_step_budget(app_client: TestClient) -> None:
    app_client.post("/api/v1/agents", json={"name": "hoarder", "model": "storer", "max_steps": 2})
    result = app_client.post("/api/v1/agents/hoarder/run", json={"task": "remember", "stream": False}).json()
    assert (result["status"], result["steps"]) == ("step_budget_exhausted", 2)
    assert result["calls"] == [{"tool": "memory_store", "outcome": "ok"}] * 2
    agent_token = app_client.post("/api/v1/agents", json={"name": "other"}).json()["token"]
    refused = app_client.post(
        "/api/v1/agents/hoarder/run", json={"task": "x"}, headers={"Authorization": f"Bearer {agent_token}"}
    )
    assert refused.status_code == 403
    assert app_client.get("/api/v1/tasks").json() == []
    assert app_client.get("/api/v1/tasks/task_nope").status_code == 404


async def test_run_agent_over_mcp_reports_progress_and_returns_the_result(
    tmp_path: Path, minilm: MiniLMEmbedder
) -> None:
    talker = FakeModel(model="talker", reply="Done.")
    with serve_live(tmp_path / "node", minilm, [("talker", talker)]) as live:
        headers = {"Authorization": f"Bearer {live.admin_token}"}
        progress: list[str] = []

        async def on_progress(done: float, total: float | None, message: str | None) -> None:
            progress.append(message or "")

        async with (
            httpx2.AsyncClient(headers=headers) as http,
            Client(streamable_http_client(f"{live.url}/mcp", http_client=http)) as client,
        ):
            agent = {"name": "oracle", "model": "talker"}
            assert (await http.post(f"{live.url}/api/v1/agents", json=agent)).status_code == 201
            result = await client.call_tool(
                "run_agent", {"agent": "oracle", "task": "finish"}, progress_callback=on_progress
            )
            outcome = result.structured_content
            assert outcome is not None
            assert (outcome["status"], outcome["answer"]) == ("completed", "Done.")
            missing = await client.call_tool("run_agent", {"agent": "nobody", "task": "x"})
            assert missing.is_error
            assert "not_found" in missing.content[0].text  # type: ignore[union-attr]
        assert progress[0] == "started" and progress[1].startswith("step 1 (")
        assert progress[-1] == "finished"


def test_agent_commands_and_noosphere_run_follow_a_run(tmp_path: Path, minilm: MiniLMEmbedder) -> None:
    talker = FakeModel(model="talker", reply="All tests pass.")
    with serve_live(tmp_path / "node", minilm, [("talker", talker)]) as live:
        data = live.settings.data_dir
        created = noosphere(
            data, "agent", "create", "tester", "--level", "L2", "--capability", "pytest", "--model", "talker",
            "--soul", "You run tests.", "--tool", "memory_*", "--serve", "--json",
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        assert json.loads(created.stdout)["capabilities"] == ["pytest"]
        shown = json.loads(noosphere(data, "agent", "show", "tester", "--json").stdout)
        assert (shown["soul"], shown["tools"], shown["serve"]) == ("You run tests.", ["memory_*"], True)
        listed = noosphere(data, "agent", "list")
        assert "tester" in listed.stderr and "pytest" in listed.stderr

        ran = noosphere(data, "run", "tester", "run the suite", "--url", live.url)
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.strip() == "All tests pass."
        assert "tester on: run the suite" in ran.stderr and "completed after 1 steps" in ran.stderr
        as_json = noosphere(data, "run", "tester", "again", "--url", live.url, "--json")
        types = [json.loads(line)["type"] for line in as_json.stdout.splitlines()]
        assert types == ["started", "step", "finished"]
        missing = noosphere(data, "run", "nobody", "x", "--url", live.url)
        assert missing.returncode == 1 and "(not_found)" in missing.stderr
        bad = noosphere(data, "agent", "create", "x y")
        assert bad.returncode == 1 and "(invalid_request)" in bad.stderr
        assert noosphere(data, "agent", "delete", "tester").returncode == 0


def test_jobs_commands_list_run_and_show_runs(tmp_path: Path, minilm: MiniLMEmbedder) -> None:
    briefer = FakeModel(model="briefer", reply="Nothing new.")
    brief = {"name": "brief", "cron": "0 8 * * 1-5", "agent": "briefer", "task": "Brief the team."}
    scheduler = {"jobs": [brief, {"name": "historian", "enabled": False}]}
    with serve_live(tmp_path / "node", minilm, [("briefer", briefer)], scheduler=scheduler) as live:
        data = live.settings.data_dir
        (data / "config.yaml").write_text(json.dumps({"scheduler": scheduler}))  # YAML is a superset
        config = ["--config", str(data / "config.yaml")]
        listed = json.loads(noosphere(data, "jobs", "list", *config, "--json").stdout)
        assert [j["name"] for j in listed] == ["memory_gc", "worker_checker", "brief"]
        assert noosphere(data, "agent", "create", "briefer", "--model", "briefer").returncode == 0
        ran = noosphere(data, "jobs", "run", "brief", "--url", live.url)
        assert ran.returncode == 0, ran.stderr
        assert "brief: ok completed after 1 steps: Nothing new." in ran.stderr
        runs = json.loads(noosphere(data, "jobs", "runs", "brief", "--json").stdout)
        assert [(r["job"], r["outcome"]) for r in runs] == [("brief", "ok")]
        missing = noosphere(data, "jobs", "run", "nope", "--url", live.url)
        assert missing.returncode == 1 and "(not_found)" in missing.stderr


def test_the_historian_summarizes_a_finished_thread_through_the_pool(
    tmp_path: Path, minilm: MiniLMEmbedder
) -> None:
    historian = {"model": "scribe", "idle_minutes": 0.001, "min_memories": 2}
    settings = load_settings(
        None, data_dir=tmp_path / "node", pool={"checker": False}, scheduler={"historian": historian}
    )
    reply = "They picked Friday.\nDECISION: release on Friday"
    with TestClient(
        create_app(settings, embedder=minilm, backends=[("scribe", FakeModel(model="scribe", reply=reply))])
    ) as client:
        client.headers["Authorization"] = f"Bearer {(settings.data_dir / 'admin-token').read_text().strip()}"
        for text in ("Friday or Monday?", "Friday."):
            stored = client.post(
                "/api/v1/memories", json={"content": text, "zone": "shared", "thread_id": "t1"}
            )
            assert stored.status_code == 201
        runs: list[dict[str, Any]] = []
        # the thread counts as finished once idle_minutes (60 ms) passed since its last memory
        until(
            lambda: (
                runs.append(client.post("/api/v1/jobs/historian/run").json())
                or "compacted 1" in runs[-1]["detail"]
            ),
            "the thread is compacted",
        )
        assert (runs[-1]["outcome"], runs[-1]["detail"]) == (
            "ok",
            "compacted 1 conversations, promoted 1 decisions",
        )
        made = client.get("/api/v1/memories", params={"owner": "job:historian"}).json()["items"]
        assert sorted((m["kind"], m["content"]) for m in made) == [
            ("decision", "release on Friday"),
            ("summary", "They picked Friday."),
        ]


def test_a_user_runs_only_agents_they_own_and_pays_for_the_run(app_client: TestClient) -> None:
    owner = app_client.post("/api/v1/users", json={"name": "ann"}).json()["token"]
    stranger = app_client.post("/api/v1/users", json={"name": "bob"}).json()["token"]
    made = app_client.post("/api/v1/agents", json={"name": "helper", "model": "talker", "owner": "ann"})
    assert made.status_code == 201, made.text
    task = {"task": "What is the answer?", "stream": False}
    refused = app_client.post(
        "/api/v1/agents/helper/run", json=task, headers={"Authorization": f"Bearer {stranger}"}
    )
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "permission_denied")
    ran = app_client.post(
        "/api/v1/agents/helper/run", json=task, headers={"Authorization": f"Bearer {owner}"}
    )
    assert ran.status_code == 200, ran.text
    assert ran.json()["answer"] == "The answer is 42."
    node = app_client.app.state.node  # type: ignore[attr-defined]
    gateway = app_client.app.state.gateway  # type: ignore[attr-defined]
    ann = app_client.portal.call(node.auth.by_id, "user:ann")  # type: ignore[union-attr]
    until(lambda: app_client.portal.call(gateway.ledger.spent, ann) > 0, "the run billed to ann")  # type: ignore[union-attr]


def test_a_profile_with_a_malformed_rule_is_refused_when_stored(app_client: TestClient) -> None:
    for rules in ({"deny": [""]}, {"ask": ["Bash(("]}):
        refused = app_client.post("/api/v1/agents", json={"name": "odd", "rules": rules})
        assert refused.status_code == 422, refused.text
        assert "policy rule" in refused.json()["error"]["message"]
    assert app_client.get("/api/v1/agents/odd").status_code == 404
