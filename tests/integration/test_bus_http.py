"""The bus over REST: in-process for the API's rules, a live socket for request/reply, and a real
node process killed with SIGKILL for durability."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from tests.integration.conftest import Live, free_port, start_node, wait_ready
from tests.integration.test_http_api import _agent


def test_agents_send_receive_and_ack_through_their_own_mailboxes(client: TestClient) -> None:
    planner, coder = _agent(client, "planner", "L1"), _agent(client, "coder")
    sent = client.post(
        "/api/v1/bus/messages",
        json={"kind": "TASK_DELEGATE", "recipient": "coder", "payload": {"task": "fix"}, "priority": 7},
        headers=planner,
    )
    assert sent.status_code == 200, sent.text
    assert sent.json()["delivered_to"] == ["coder"]
    again = client.post(
        "/api/v1/bus/messages",
        json={"kind": "TASK_DELEGATE", "recipient": "coder", "id": sent.json()["id"]},
        headers=planner,
    )
    assert again.json() == {"id": sent.json()["id"], "delivered_to": [], "duplicate": True}

    peek = client.post("/api/v1/bus/mailboxes/coder/receive", json={}, headers=planner)
    assert peek.status_code == 403
    assert peek.json()["error"]["code"] == "permission_denied"

    got = client.post("/api/v1/bus/mailboxes/coder/receive", json={"limit": 5}, headers=coder).json()
    assert len(got) == 1
    assert got[0]["attempt"] == 1
    assert got[0]["envelope"]["sender"] == "planner"  # the caller's own address, not a claim
    assert got[0]["envelope"]["payload"] == {"task": "fix"}
    assert client.get("/api/v1/bus/mailboxes", headers=coder).json() == [
        {"mailbox": "coder", "ready": 0, "in_flight": 1, "dead": 0}
    ]
    acked = client.post(
        "/api/v1/bus/mailboxes/coder/ack", json={"ids": [got[0]["envelope"]["id"]]}, headers=coder
    )
    assert acked.json() == {"settled": 1}
    assert client.get("/api/v1/bus/mailboxes").json() == []  # the admin's view: nothing pending


def test_only_the_admin_sends_as_another_address(client: TestClient) -> None:
    coder = _agent(client, "coder")
    spoof = client.post(
        "/api/v1/bus/messages", json={"kind": "EVENT", "recipient": "x", "sender": "planner"}, headers=coder
    )
    assert spoof.status_code == 403
    assert (
        client.post(
            "/api/v1/bus/messages", json={"kind": "EVENT", "recipient": "x", "sender": "planner"}
        ).status_code
        == 200
    )


def test_topic_subscriptions_over_rest(client: TestClient) -> None:
    watcher = _agent(client, "watcher")
    assert (
        client.put("/api/v1/bus/subscriptions", json={"pattern": "builds.>"}, headers=watcher).status_code
        == 204
    )
    assert client.get("/api/v1/bus/subscriptions", headers=watcher).json() == [
        {"subscriber": "watcher", "pattern": "builds.>"}
    ]
    published = client.post("/api/v1/bus/messages", json={"kind": "EVENT", "topic": "builds.main.ok"})
    assert published.json()["delivered_to"] == ["watcher"]
    got = client.post("/api/v1/bus/mailboxes/watcher/receive", json={}, headers=watcher).json()
    assert got[0]["envelope"]["topic"] == "builds.main.ok"
    assert (
        client.delete(
            "/api/v1/bus/subscriptions", params={"pattern": "builds.>"}, headers=watcher
        ).status_code
        == 204
    )
    assert client.get("/api/v1/bus/subscriptions", headers=watcher).json() == []


def test_bad_envelopes_get_structured_errors_and_send_nothing(client: TestClient) -> None:
    for body, status, word in [
        ({"kind": "EVENT", "recipient": "a", "topic": "t"}, 400, "exactly one of recipient or topic"),
        ({"kind": "EVENT", "recipient": "a", "priority": 12}, 422, "priority"),  # the schema too
        ({"kind": "SHOUT", "recipient": "a"}, 422, "kind"),  # refused by the schema
        ({"kind": "EVENT", "topic": "a.*"}, 400, "invalid topic"),
        ({"kind": "EVENT", "recipient": "has space"}, 400, "invalid mailbox address"),
    ]:
        response = client.post("/api/v1/bus/messages", json=body)
        assert response.status_code == status, body
        assert response.json()["error"]["code"] == "invalid_request"
        assert word in response.json()["error"]["message"]
    assert client.get("/api/v1/bus/mailboxes").json() == []


def test_request_and_reply_over_http(live: Live) -> None:
    admin = {"Authorization": f"Bearer {live.admin_token}"}

    def responder() -> None:
        with httpx.Client(base_url=live.url, headers=admin, timeout=30) as http:
            got = http.post("/api/v1/bus/mailboxes/adder/receive", json={"wait_seconds": 20}).json()
            request = got[0]["envelope"]
            http.post(
                "/api/v1/bus/messages",
                json={
                    "kind": "RESPONSE",
                    "recipient": request["reply_to"],
                    "correlation_id": request["id"],
                    "payload": {"sum": sum(request["payload"]["add"])},
                    "sender": "adder",
                },
            )
            http.post("/api/v1/bus/mailboxes/adder/ack", json={"ids": [request["id"]]})

    thread = threading.Thread(target=responder)
    thread.start()
    with httpx.Client(base_url=live.url, headers=admin, timeout=30) as http:
        answer = http.post(
            "/api/v1/bus/requests",
            json={"recipient": "adder", "payload": {"add": [4, 5]}, "timeout_seconds": 20},
        )
        timed_out = http.post("/api/v1/bus/requests", json={"recipient": "nobody", "timeout_seconds": 0.2})
    thread.join(timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["payload"] == {"sum": 9}
    assert answer.json()["sender"] == "adder"
    assert timed_out.status_code == 504
    assert timed_out.json()["error"]["code"] == "timeout"


def test_messages_survive_a_kill_9_of_the_node(tmp_path: Path) -> None:
    data, port = tmp_path / "node", free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_node(data, port, "--no-local-worker")
    try:
        wait_ready(process, url)
        admin = {"Authorization": f"Bearer {(data / 'admin-token').read_text().strip()}"}
        ids = []
        for n in range(50):
            sent = httpx.post(
                f"{url}/api/v1/bus/messages",
                json={"kind": "COMMAND", "recipient": "worker", "payload": {"n": n}, "priority": n % 3},
                headers=admin,
            )
            ids.append(sent.json()["id"])
        leased = httpx.post(
            f"{url}/api/v1/bus/mailboxes/worker/receive",
            json={"limit": 10, "lease_seconds": 1},
            headers=admin,
        ).json()
        done = httpx.post(
            f"{url}/api/v1/bus/mailboxes/worker/receive", json={"limit": 5}, headers=admin
        ).json()
        httpx.post(
            f"{url}/api/v1/bus/mailboxes/worker/ack",
            json={"ids": [d["envelope"]["id"] for d in done]},
            headers=admin,
        )
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL

    process = start_node(data, port, "--no-local-worker")
    try:
        wait_ready(process, url)
        received: list[dict[str, object]] = []
        deadline = time.monotonic() + 30
        while len(received) < 45 and time.monotonic() < deadline:
            received += httpx.post(
                f"{url}/api/v1/bus/mailboxes/worker/receive",
                json={"limit": 100, "wait_seconds": 2},
                headers=admin,
            ).json()
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
    got = {d["envelope"]["id"]: d for d in received}  # type: ignore[index]
    acked = {d["envelope"]["id"] for d in done}
    assert len(received) == 45  # every unacknowledged message, once
    assert set(got) == set(ids) - acked
    redelivered = {d["envelope"]["id"] for d in leased}
    assert all(got[i]["attempt"] == 2 for i in redelivered)  # leased before the kill: delivered again
