"""What an operator sees of a running node: Prometheus series at /metrics, readiness by
subsystem at /readyz, request ids on answers and log lines."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from noosphere.config import load_settings
from noosphere.embeddings.minilm import MiniLMEmbedder
from noosphere.server.app import create_app
from noosphere.testing import FakeModel, until
from tests.integration.conftest import free_port, start_node, wait_ready

METRICS_TOKEN = "scraper-token-0123456789"


@pytest.fixture
def node(tmp_path: Path, minilm: MiniLMEmbedder) -> Iterator[TestClient]:
    settings = load_settings(
        None,
        data_dir=tmp_path / "node",
        auth={"metrics_token": METRICS_TOKEN},
        pool={"checker": False},
        scheduler={"enabled": False},
    )
    app = create_app(
        settings, embedder=minilm, backends=[("fake-worker", FakeModel("fake", reply="one two three"))]
    )
    with TestClient(app) as client:
        token = (settings.data_dir / "admin-token").read_text().strip()
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


def _samples(
    client: TestClient, token: str | None = None
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    answer = client.get("/metrics", headers=headers or None)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def _value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_count_requests_chats_memory_and_bus_work(node: TestClient) -> None:
    stored = node.post("/api/v1/memories", json={"content": "the deploy key rotates on Mondays"})
    assert stored.status_code == 201
    assert node.post("/api/v1/memories/search", json={"query": "deploy key"}).status_code == 200
    assert (
        node.post(
            "/api/v1/bus/messages", json={"kind": "EVENT", "recipient": "admin", "payload": {"n": 1}}
        ).status_code
        == 200
    )
    chat = {"model": "fake", "messages": [{"role": "user", "content": "count"}]}
    assert node.post("/v1/chat/completions", json=chat).status_code == 200
    samples = _samples(node)
    route = {"method": "POST", "route": "/api/v1/memories", "status": "201"}
    assert _value(samples, "noosphere_http_request_duration_seconds_count", **route) == 1
    chats = {"method": "POST", "route": "/v1/chat/completions", "status": "200"}
    assert _value(samples, "noosphere_http_request_duration_seconds_count", **chats) == 1
    memory = {"subsystem": "memory", "operation": "store", "outcome": "ok"}
    assert _value(samples, "noosphere_operations_total", **memory) == 1
    search = {"subsystem": "memory", "operation": "search"}
    assert _value(samples, "noosphere_operation_duration_seconds_count", **search) == 1
    assert _value(samples, "noosphere_operations_total", subsystem="bus", operation="send", outcome="ok") == 1
    served = {"model": "fake", "worker": "fake-worker"}
    assert _value(samples, "noosphere_gateway_time_to_first_token_seconds_count", **served) == 1
    assert _value(samples, "noosphere_gateway_completion_tokens_total", **served) == 3
    assert _value(samples, "noosphere_gateway_jobs_total", model="fake", outcome="ok") == 1
    assert _value(samples, "noosphere_pool_queue_wait_seconds_count", model="fake") == 1
    assert _value(samples, "noosphere_pool_workers", kind="worker", state="healthy") == 1
    assert _value(samples, "noosphere_pool_slots", model="fake") >= 1
    assert _value(samples, "noosphere_bus_mailbox_messages", mailbox="admin", state="ready") == 1
    assert _value(samples, "noosphere_loop_up", loop="pool_maintenance") == 1
    assert _value(samples, "noosphere_audit_log_entries") >= 1  # the bus send is audited
    assert ("noosphere_approvals_pending", frozenset()) in samples
    assert ("noosphere_uptime_seconds", frozenset()) in samples


def test_metrics_take_the_admin_or_the_metrics_token_and_no_other(node: TestClient) -> None:
    assert _samples(node, METRICS_TOKEN)
    user = node.post("/api/v1/users", json={"name": "ann"}).json()["token"]
    refused = node.get("/metrics", headers={"Authorization": f"Bearer {user}"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "permission_denied"
    anonymous = node.get("/metrics", headers={"Authorization": ""})
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "unauthenticated"
    # the metrics token opens /metrics only
    other = node.get("/api/v1/memories", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert other.status_code == 401


def test_a_failing_loop_makes_the_node_unready_and_shows_in_the_metrics(node: TestClient) -> None:
    ready = node.get("/readyz")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["status"] == "ready"
    assert set(body["subsystems"]) == {"store", "embedder", "pool", "scheduler", "federation"}
    assert all(s["status"] == "ok" for s in body["subsystems"].values())
    assert body["subsystems"]["embedder"]["dimension"] == 384

    async def broken() -> None:
        raise RuntimeError("the disk went away")

    assert node.portal is not None
    node.portal.call(lambda: _start(node, broken))
    until(lambda: node.get("/readyz").status_code == 503, "the node reports the failing loop")
    down = node.get("/readyz").json()
    assert down["status"] == "unavailable" and "loop:broken" in down["down"]
    samples = _samples(node)
    assert _value(samples, "noosphere_loop_up", loop="broken") == 0
    assert _value(samples, "noosphere_loop_restarts_total", loop="broken") >= 1


async def _start(client: TestClient, loop: object) -> None:
    client.app.state.supervisor.start("broken", loop)  # type: ignore[attr-defined]


def test_each_answer_carries_a_request_id(node: TestClient) -> None:
    fresh = node.get("/healthz")
    assert len(fresh.headers["x-request-id"]) == 32
    given = node.get("/api/v1/memories", headers={"X-Request-Id": "trace-42.a"})
    assert given.headers["x-request-id"] == "trace-42.a"
    odd = node.get("/healthz", headers={"X-Request-Id": "no spaces or\tcontrol"})
    assert odd.headers["x-request-id"] != "no spaces or\tcontrol"
    error = node.get("/api/v1/memories/m_missing", headers={"X-Request-Id": "trace-43"})
    assert error.status_code == 404 and error.headers["x-request-id"] == "trace-43"


def test_json_logs_carry_the_request_id_of_each_access(tmp_path: Path) -> None:
    data, port = tmp_path / "node", free_port()
    process = start_node(data, port, "--log-format", "json")
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(process, url)
        token = (data / "admin-token").read_text().strip()
        headers = {"Authorization": f"Bearer {token}", "X-Request-Id": "req-json-1"}
        assert httpx.get(f"{url}/api/v1/memories", headers=headers).status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("request_id") == "req-json-1"]
    assert access, err
    line = access[0]
    assert line["logger"] == "noosphere.access" and line["level"] == "INFO"
    assert (line["method"], line["route"], line["status"]) == ("GET", "/api/v1/memories", 200)
    assert "time" in line and isinstance(line["duration_ms"], float)
