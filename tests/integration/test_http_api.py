"""The REST API in-process: status codes, error shapes, auth, limits."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from noosphere.config import load_settings
from noosphere.embeddings.minilm import MiniLMEmbedder
from noosphere.server.app import create_app


def _agent(client: TestClient, name: str, level: str = "L2") -> dict[str, str]:
    response = client.post("/api/v1/agents", json={"name": name, "level": level})
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def test_health_readiness_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["status"] == "ready"
    spec = client.get("/openapi.json").json()
    assert "/api/v1/memories/search" in spec["paths"]
    assert client.get("/docs").status_code == 200


def test_store_search_get_list_forget(client: TestClient) -> None:
    created = client.post(
        "/api/v1/memories", json={"content": "The VPN gateway is at 10.8.0.1", "tags": ["net"]}
    )
    assert created.status_code == 201
    memory = created.json()
    batch = client.post(
        "/api/v1/memories/batch",
        json={
            "items": [
                {"content": "Bob's daughter turned seven", "zone": "shared"},
                {"content": "Rotate API keys every ninety days", "kind": "decision"},
            ]
        },
    )
    assert batch.status_code == 201
    assert len(batch.json()["items"]) == 2
    hits = client.post("/api/v1/memories/search", json={"query": "vpn address", "limit": 2}).json()["hits"]
    assert hits[0]["memory"]["id"] == memory["id"]
    assert set(hits[0]) == {"memory", "score", "source"} and hits[0]["source"] is None
    assert client.get(f"/api/v1/memories/{memory['id']}").json()["content"].startswith("The VPN")
    page = client.get("/api/v1/memories", params={"limit": 2}).json()
    assert len(page["items"]) == 2
    assert page["next_cursor"] is not None
    rest = client.get("/api/v1/memories", params={"cursor": page["next_cursor"]}).json()
    assert len(rest["items"]) == 1
    assert (
        client.get("/api/v1/memories", params={"kinds": "decision"}).json()["items"][0]["kind"] == "decision"
    )
    assert client.delete(f"/api/v1/memories/{memory['id']}").status_code == 204
    gone = client.get(f"/api/v1/memories/{memory['id']}")
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "not_found"


def test_every_request_needs_a_valid_token(client: TestClient) -> None:
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        response = client.get("/api/v1/memories", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthenticated"
        assert response.headers["www-authenticate"] == "Bearer"


def test_agents_are_admin_business(client: TestClient) -> None:
    agent = _agent(client, "scout", "L3")
    refused = client.post("/api/v1/agents", json={"name": "other"}, headers=agent)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "permission_denied"
    assert [a["name"] for a in client.get("/api/v1/agents").json()] == ["scout"]
    duplicate = client.post("/api/v1/agents", json={"name": "scout"})
    assert duplicate.status_code == 409
    assert client.delete("/api/v1/agents/scout").status_code == 204
    assert client.get("/api/v1/memories", headers=agent).status_code == 401


def test_level_limits_are_403_with_a_reason(client: TestClient) -> None:
    agent = _agent(client, "helper", "L3")
    response = client.post("/api/v1/memories", json={"content": "x", "zone": "shared"}, headers=agent)
    assert response.status_code == 403
    assert "L3" in response.json()["error"]["message"]


def test_bad_input_gets_a_structured_error_and_changes_nothing(client: TestClient) -> None:
    cases = [
        ({"content": "x", "zone": "public"}, "zone"),
        ({"content": "x", "kind": "Not A Kind!"}, "kind"),
        ({"content": "x", "tags": ["bad tag with spaces"]}, "tag"),
        ({"content": "x", "metadata": {"a b": 1}}, "metadata"),
        ({"content": "x", "importance": 3}, "importance"),
        ({"content": "x", "owner": "agent:someone"}, "owner"),
        ({}, "content"),
    ]
    for body, word in cases:
        response = client.post("/api/v1/memories", json=body)
        assert response.status_code == 422, body
        error = response.json()["error"]
        assert error["code"] == "invalid_request"
        assert word in error["message"], error
    broken = client.post(
        "/api/v1/memories", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert broken.status_code == 422
    assert client.get("/api/v1/memories").json()["items"] == []


def test_oversized_bodies_are_refused_before_reading(client: TestClient) -> None:
    response = client.post("/api/v1/memories", json={"content": "x" * 70_000})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_gdpr_erasure_of_an_owner(client: TestClient) -> None:
    user = client.post("/api/v1/users", json={"name": "ann"}).json()
    headers = {"Authorization": f"Bearer {user['token']}"}
    for i in range(3):
        client.post("/api/v1/memories", json={"content": f"ann's note {i}"}, headers=headers)
    erased = client.delete("/api/v1/memories", params={"owner": "user:ann"}, headers=headers)
    assert erased.json() == {"deleted": 3}
    assert client.get("/api/v1/memories", headers=headers).json()["items"] == []


def test_unknown_routes_answer_json(client: TestClient) -> None:
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_the_scheduled_gc_job_purges_expired_memories(tmp_path: Path, minilm: MiniLMEmbedder) -> None:
    every_second = {"jobs": [{"name": "memory_gc", "cron": "* * * * * *"}]}
    settings = load_settings(None, data_dir=tmp_path / "gc", scheduler=every_second)
    with TestClient(create_app(settings, embedder=minilm)) as client:
        client.headers["Authorization"] = "Bearer " + (settings.data_dir / "admin-token").read_text().strip()
        soon = (datetime.now(UTC) + timedelta(seconds=0.3)).isoformat()
        client.post("/api/v1/memories", json={"content": "short-lived", "expires_at": soon})
        client.post("/api/v1/memories", json={"content": "stays"})
        store = client.app.state.node.store  # type: ignore[attr-defined]
        deadline = time.monotonic() + 10
        while client.portal.call(store.count) != 1:  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "expired memory was not purged"
            time.sleep(0.05)
        assert [m["content"] for m in client.get("/api/v1/memories").json()["items"]] == ["stays"]
        jobs = {job["name"]: job for job in client.get("/api/v1/jobs").json()}
        assert jobs["memory_gc"]["cron"] == "* * * * * *"
        assert jobs["memory_gc"]["principal"] == "job:memory_gc"
        runs = client.get("/api/v1/jobs/runs", params={"job": "memory_gc"}).json()
        assert any(r["outcome"] == "ok" and "purged 1 expired" in r["detail"] for r in runs)
        now = client.post("/api/v1/jobs/historian/run").json()
        assert (now["job"], now["outcome"], now["tick"][:7]) == ("historian", "ok", "manual:")
        assert now["detail"] == "compacted 0 conversations, promoted 0 decisions"
        assert client.post("/api/v1/jobs/nope/run").json()["error"]["code"] == "not_found"


def test_the_openapi_spec_documents_chat_completions_and_every_error_answer(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    chat = spec["paths"]["/v1/chat/completions"]["post"]
    assert chat["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "ChatCompletionRequest"
    )
    assert {"200", "401", "403", "404", "413", "422", "429", "503"} <= set(chat["responses"])
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if path in ("/healthz", "/readyz"):
                continue
            documented = set(operation["responses"])
            assert {"401", "403", "422", "503"} <= documented, (method, path)
            if "{" in path:
                assert "404" in documented, (method, path)
    assert "ErrorBody" in spec["components"]["schemas"]


def test_an_unsupported_method_is_405_and_an_unknown_path_404(client: TestClient) -> None:
    refused = client.request("TRACE", "/api/v1/memories")
    assert (refused.status_code, refused.headers["allow"]) == (405, "DELETE, GET, POST")
    assert client.request("PATCH", "/api/v1/memories/m1").headers["allow"] == "DELETE, GET"
    missing = client.get("/api/v1/nothing-here")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_only_authenticated_calls_make_chats_take_turns(client: TestClient) -> None:
    """Chats make way for agents' calls (``server/interactive.py``), but only for callers who
    authenticated: requests without valid credentials cannot hold chats back."""
    turns = client.app.interactive  # type: ignore[attr-defined]
    before = turns.last_call
    for headers in ({"Authorization": "Bearer ns_wrong"}, {"Authorization": ""}):
        assert client.get("/api/v1/memories", headers=headers).status_code == 401
    assert client.post("/mcp", headers={"Authorization": "Bearer ns_wrong"}, json={}).status_code == 401
    assert client.get("/v1/models").status_code == 200  # the OpenAI surface is not such a call
    assert turns.last_call == before
    assert client.get("/api/v1/memories").status_code == 200
    assert turns.last_call > before
    after_rest = turns.last_call
    client.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})  # any answer: it arrived
    assert turns.last_call > after_rest


def test_a_users_conversation_secret_is_reset_by_the_admin_and_audited(client: TestClient) -> None:
    ann = client.post("/api/v1/users", json={"name": "ann", "conversations": True}).json()["token"]
    assert client.post("/api/v1/users/ann/reset-secret").json() == {"reset": False}  # none chosen yet
    secret = {"Authorization": f"Bearer {ann}", "X-Noosphere-Secret": "ann's first conversation secret"}
    assert client.get("/api/v1/memories", headers=secret).status_code == 200  # the first use chooses it
    assert client.post("/api/v1/users/ann/reset-secret").json() == {"reset": True}
    entries = client.get("/api/v1/audit", params={"limit": 1000}).json()
    assert any(e["body"] == {"event": "secret_reset", "principal": "ann"} for e in entries)
    as_ann = client.post("/api/v1/users/ann/reset-secret", headers={"Authorization": f"Bearer {ann}"})
    assert as_ann.status_code == 403
    assert client.post("/api/v1/users/nobody/reset-secret").json() == {"reset": False}
