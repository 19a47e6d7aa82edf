"""Bad input gets a clear error and loses nothing: values a caller could send that once stopped
the node's accounting or broke other callers' reads are refused at the edge, and the node goes on
serving everyone."""

from __future__ import annotations

import contextlib
import json
import select
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from noosphere.config import load_settings
from noosphere.embeddings.minilm import MiniLMEmbedder
from noosphere.server.app import create_app
from noosphere.testing import FakeModel, until
from tests.integration.conftest import serve_live


@pytest.fixture
def client(tmp_path: Path, minilm: MiniLMEmbedder) -> Iterator[TestClient]:
    settings = load_settings(None, data_dir=tmp_path / "node", pool={"checker": False})
    app = create_app(settings, embedder=minilm, backends=[("fake", FakeModel("fake", reply="fine"))])
    with TestClient(app) as test_client:
        token = (settings.data_dir / "admin-token").read_text().strip()
        test_client.headers["Authorization"] = f"Bearer {token}"
        yield test_client


def _chat(client: TestClient, headers: dict[str, str] | None = None, **extra: Any) -> Any:
    body = {"model": "fake", "messages": [{"role": "user", "content": "hello"}], **extra}
    return client.post("/v1/chat/completions", json=body, headers=headers or {})


def _agent(client: TestClient, name: str) -> dict[str, str]:
    created = client.post("/api/v1/agents", json={"name": name, "level": "L2"})
    return {"Authorization": f"Bearer {created.json()['token']}"}


@pytest.mark.parametrize(
    ("headers", "extra"),
    [
        ({"X-Conversation-Id": "c" * 300}, {}),
        ({}, {"metadata": {"conversation_id": "c" * 129}}),
        ({"X-Conversation-Id": "line\nbreak"}, {}),
    ],
)
def test_an_oversized_conversation_id_is_refused_and_the_node_goes_on(
    client: TestClient, headers: dict[str, str], extra: dict[str, Any]
) -> None:
    refused = _chat(client, headers, **extra)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["code"] == "invalid_request"
    assert _chat(client, {"X-Conversation-Id": "c" * 128}).status_code == 200
    assert _chat(client).status_code == 200
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready"
    assert ready["loops"]["pool_maintenance"] == {
        "state": "running",
        "restarts": 0,
        "last_error": None,
        "last_error_at": None,
    }
    assert client.post("/api/v1/memories", json={"content": "still writable"}).status_code == 201


@pytest.mark.parametrize(
    "draft",
    [
        {"content": "far future", "zone": "shared", "expires_at": "9999-12-31T23:59:59.999999Z"},
        {"content": "far past", "zone": "shared", "valid_at": "0001-01-01T00:00:00Z"},
        {"content": "nul \u0000 byte", "zone": "shared"},
        {"content": "ok", "zone": "shared", "metadata": {"x": "nul \u0000"}},
        {"content": "ok", "zone": "shared", "thread_id": "t" * 129},
    ],
)
def test_values_no_backend_can_keep_are_refused(client: TestClient, draft: dict[str, Any]) -> None:
    refused = client.post("/api/v1/memories", json=draft)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "invalid_request"


@pytest.mark.parametrize(
    "raw",
    [
        '{"content": "\\ud800", "zone": "shared"}',  # valid JSON, not valid Unicode text
        '{"content": "ok", "metadata": {"x": NaN}}',  # Python's JSON reader takes NaN
        '{"content": "ok", "metadata": {"x": Infinity}}',
    ],
)
def test_text_and_numbers_json_allows_but_storage_cannot_keep_are_refused(
    client: TestClient, raw: str
) -> None:
    refused = client.post("/api/v1/memories", content=raw, headers={"Content-Type": "application/json"})
    assert refused.status_code == 422, refused.text
    search = '{"query": "\\udfff"}'
    refused = client.post(
        "/api/v1/memories/search", content=search, headers={"Content-Type": "application/json"}
    )
    assert refused.status_code == 422


@pytest.mark.parametrize(
    "params",
    [{"cursor": "9223372036854775808"}, {"cursor": "-1"}, {"tags": ""}, {"kinds": "x" * 40}],
)
def test_out_of_range_list_parameters_are_refused(client: TestClient, params: dict[str, str]) -> None:
    refused = client.get("/api/v1/memories", params=params)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "invalid_request"


def test_an_absurd_message_ttl_is_refused(client: TestClient) -> None:
    message = {"kind": "EVENT", "recipient": "someone", "payload": {}, "ttl_seconds": 1e308}
    refused = client.post("/api/v1/bus/messages", json=message)
    assert refused.status_code == 422, refused.text


def test_what_one_caller_stored_never_breaks_another_callers_reads(client: TestClient) -> None:
    writer, reader = _agent(client, "writer"), _agent(client, "reader")
    edge = {"content": "expires at the edge of what is allowed", "zone": "shared"}
    edge["expires_at"] = "8999-12-31T23:59:59.999999Z"
    assert client.post("/api/v1/memories", json=edge, headers=writer).status_code == 201
    odd = {"content": "emoji 🦀 and RTL \u202e text", "zone": "shared", "metadata": {"n": None}}
    assert client.post("/api/v1/memories", json=odd, headers=writer).status_code == 201
    found = client.post("/api/v1/memories/search", json={"query": "edge allowed"}, headers=reader)
    assert found.status_code == 200
    assert {h["memory"]["content"] for h in found.json()["hits"]} >= {edge["content"], odd["content"]}
    listed = client.get("/api/v1/memories", headers=reader)
    assert listed.status_code == 200 and len(listed.json()["items"]) == 2
    for item in listed.json()["items"]:
        assert client.get(f"/api/v1/memories/{item['id']}", headers=reader).status_code == 200
    until(lambda: client.get("/readyz").json()["status"] == "ready", "the node stays ready")
    json.dumps(listed.json())


@pytest.mark.parametrize("path", ["/api/v1/memories", "/v1/chat/completions", "/mcp", "/v1/embeddings"])
def test_a_chunked_body_is_cut_off_at_the_size_limit(
    tmp_path: Path, minilm: MiniLMEmbedder, path: str
) -> None:
    limit = 64 * 1024
    settings = load_settings(None, data_dir=tmp_path / "node", server={"max_body_bytes": limit})

    def body() -> Iterator[bytes]:  # no Content-Length: sent chunked
        yield b'{"content": "'
        for _ in range(16):
            yield b"x" * (64 * 1024)

    with TestClient(create_app(settings, embedder=minilm)) as client:
        token = (settings.data_dir / "admin-token").read_text().strip()
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        if path == "/mcp":
            headers["Accept"] = "application/json, text/event-stream"
        refused = client.post(path, content=body(), headers=headers)
        assert refused.status_code == 413, refused.text
        assert refused.json()["error"]["code"] == "payload_too_large"
        assert client.get("/readyz").json()["status"] == "ready"


def test_readiness_shows_loop_errors_to_the_admin_only(client: TestClient) -> None:
    admin_view = client.get("/readyz").json()["loops"]["pool_maintenance"]
    assert "last_error" in admin_view
    anonymous = client.get("/readyz", headers={"Authorization": ""}).json()["loops"]["pool_maintenance"]
    assert "last_error" not in anonymous and anonymous["state"] == "running"


def test_a_node_stops_reading_a_chunked_body_at_the_limit(tmp_path: Path, minilm: MiniLMEmbedder) -> None:
    """Over a real socket: the node answers 413 and closes while the client still sends; what it
    took in stays near the limit, not the 300 MB offered."""
    with serve_live(tmp_path / "node", minilm, server={"max_body_bytes": 64 * 1024}) as live:
        port = int(live.url.rsplit(":", 1)[1])
        sent, answer = 0, b""
        with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
            head = (
                "POST /api/v1/memories HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                f"Authorization: Bearer {live.admin_token}\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            conn.sendall(head.encode())
            chunk = b"x" * (64 * 1024)
            framed = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
            try:
                while sent < 300 * 2**20:
                    conn.sendall(framed)
                    sent += len(chunk)
                    readable, _, _ = select.select([conn], [], [], 0)
                    if readable:
                        break
            except OSError:  # the node closed the connection: it will not read the rest
                pass
            with contextlib.suppress(OSError):
                answer = conn.recv(65536)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert sent < 32 * 2**20, f"{sent} bytes went out before the node answered"


def test_an_embeddings_request_has_a_bounded_number_of_inputs(client: TestClient) -> None:
    refused = client.post("/v1/embeddings", json={"model": "default", "input": ["x"] * 2049})
    assert refused.status_code == 422
    refused = client.post("/v1/embeddings", json={"model": "default", "input": []})
    assert refused.status_code == 422
    assert client.post("/v1/embeddings", json={"model": "default", "input": ["x"] * 3}).status_code == 200


def test_an_audit_position_past_any_log_is_refused_not_a_failure(client: TestClient) -> None:
    assert client.get("/api/v1/audit", params={"start": 2**63}).status_code == 422
    assert client.get("/api/v1/audit", params={"start": 2**63 - 1}).json() == []
