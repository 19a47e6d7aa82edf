"""The dashboard over HTTP, as a browser uses it (forms, a session cookie, CSRF tokens): who may
sign in and see what, and that each action does what the API would. The same pages in a real
browser: ``test_dashboard_browser.py``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from noosphere.config import load_settings
from noosphere.embeddings.minilm import MiniLMEmbedder
from noosphere.governance.policy import ToolCall
from noosphere.node import Node
from noosphere.server.app import create_app
from noosphere.testing import FakeModel, until

HTML = {"Accept": "text/html"}


@pytest.fixture
def browser(tmp_path: Path, minilm: MiniLMEmbedder) -> Iterator[TestClient]:
    settings = load_settings(
        None, data_dir=tmp_path / "node", pool={"checker": False}, scheduler={"enabled": False}
    )
    app = create_app(
        settings, embedder=minilm, backends=[("fake-worker", FakeModel("fake", reply="one two three"))]
    )
    with TestClient(app, follow_redirects=False) as client:
        client.headers.update(HTML)
        yield client


def _admin(client: TestClient) -> str:
    node: Node = client.app.state.node  # type: ignore[attr-defined]
    return (node.settings.data_dir / "admin-token").read_text().strip()


def _sign_in(client: TestClient, token: str) -> str:
    """Signs in; the CSRF token of the new session."""
    signed = client.post("/ui/login", data={"token": token, "next": "/ui"})
    assert signed.status_code == 303 and signed.headers["location"] == "/ui", signed.text
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    page = client.get("/ui")
    assert page.status_code == 200
    found = re.search(r'data-csrf="([^"]+)"', page.text)
    assert found is not None
    return found[1]


def _user(client: TestClient, name: str) -> str:
    admin = {"Authorization": f"Bearer {_admin(client)}", "Accept": "application/json"}
    made = client.post("/api/v1/users", json={"name": name}, headers=admin)
    assert made.status_code == 201, made.text
    token: str = made.json()["token"]
    return token


def _ask(client: TestClient, tool: str, args: dict[str, object]) -> str:
    """An approval request as an agent's call would make one."""
    node: Node = client.app.state.node  # type: ignore[attr-defined]
    call = ToolCall(tool=tool, subject=None, impact=0.8, writes=True)

    async def request() -> str:
        record = await node.checkpoints.request("deployer", "L2", call, args, "impact 0.8 needs a person")
        return record.id

    assert client.portal is not None
    return client.portal.call(request)


def test_nothing_is_readable_without_signing_in(browser: TestClient) -> None:
    for path in ("/ui", "/ui/approvals", "/ui/memory", "/ui/pool", "/ui/chat"):
        answer = browser.get(path)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/ui/login"), path
    api_style = browser.get("/ui/approvals", headers={"Accept": "application/json"})
    assert api_style.status_code == 401 and api_style.json()["error"]["code"] == "unauthenticated"
    assert browser.get("/").headers["location"] == "/ui"


def test_only_people_sign_in_and_a_bad_token_is_told_so(browser: TestClient) -> None:
    refused = browser.post("/ui/login", data={"token": "not-a-token"})
    assert refused.status_code == 200 and "not valid here" in refused.text
    assert "set-cookie" not in refused.headers
    admin = {"Authorization": f"Bearer {_admin(browser)}", "Accept": "application/json"}
    agent = browser.post("/api/v1/agents", json={"name": "bot", "level": "L2"}, headers=admin).json()["token"]
    as_agent = browser.post("/ui/login", data={"token": agent})
    assert "for people" in as_agent.text and "set-cookie" not in as_agent.headers
    away = browser.post("/ui/login", data={"token": _admin(browser), "next": "https://evil.example/x"})
    assert away.headers["location"] == "/ui"  # no open redirect


def test_a_form_without_the_sessions_csrf_token_changes_nothing(browser: TestClient) -> None:
    csrf = _sign_in(browser, _admin(browser))
    asked = _ask(browser, "shell_run", {"command": "rm -rf build"})
    forged = browser.post("/ui/approvals/decide", data={"one": f"{asked}:approve:once"})
    assert forged.status_code == 403 and "csrf_failed" in forged.text
    wrong = browser.post("/ui/approvals/decide", data={"one": f"{asked}:approve:once", "csrf": "x" * 43})
    assert wrong.status_code == 403
    node: Node = browser.app.state.node  # type: ignore[attr-defined]
    assert browser.portal is not None
    assert browser.portal.call(node.checkpoints.get, asked).status == "pending"
    done = browser.post("/ui/approvals/decide", data={"one": f"{asked}:approve:once", "csrf": csrf})
    assert done.status_code == 303
    assert browser.portal.call(node.checkpoints.get, asked).status == "approved"


def test_the_approvals_queue_shows_the_full_call_and_decides_in_batches(browser: TestClient) -> None:
    csrf = _sign_in(browser, _admin(browser))
    first = _ask(browser, "shell_run", {"command": "git push --force origin main", "cwd": "/srv/app"})
    second = _ask(browser, "memory_forget", {"id": "m_0123"})
    third = _ask(browser, "http_post", {"url": "https://example.com/hook"})
    page = browser.get("/ui/approvals").text
    assert "git push --force origin main" in page and "/srv/app" in page  # the arguments, not a digest
    assert "deployer" in page and "impact 0.80" in page and "times out in" in page
    batch = {"ids": [first, second], "verdict": "reject", "scope": "once", "note": "not today", "csrf": csrf}
    assert browser.post("/ui/approvals/decide", data=batch).status_code == 303
    always = {"one": f"{third}:approve:always", "csrf": csrf}
    assert browser.post("/ui/approvals/decide", data=always).status_code == 303
    after = browser.get("/ui/approvals").text
    assert "Nothing waits for you" in after
    decided = after.split("Decided", 1)[1]
    assert decided.count(">rejected<") == 2 and "approved (always)" in decided and "not today" in decided
    again = browser.post("/ui/approvals/decide", data={"one": f"{first}:approve:once", "csrf": csrf})
    assert again.status_code == 409 and "already" in again.text


def test_a_user_sees_people_pages_but_not_the_admins(browser: TestClient) -> None:
    _sign_in(browser, _user(browser, "ann"))
    assert browser.get("/ui/memory").status_code == 200
    assert browser.get("/ui/approvals").status_code == 200
    for path in ("/ui/pool", "/ui/audit", "/ui/federation", "/ui/agents"):
        page = browser.get(path)
        assert page.status_code == 403 and "is not open to" in page.text, path
    nav = browser.get("/ui").text
    assert 'href="/ui/pool"' not in nav and 'href="/ui/memory"' in nav
    assert (
        "<h2>Workers</h2>" not in nav
    )  # the pool's workers are the admin's (its loops, as /readyz, anyone's)
    assert "fake" in nav  # the models are anyone's (as /v1/models)


def test_memory_search_shows_hits_and_a_record_with_its_versions(browser: TestClient) -> None:
    admin = {"Authorization": f"Bearer {_admin(browser)}", "Accept": "application/json"}
    first = browser.post(
        "/api/v1/memories",
        json={"content": "The staging database lives on db-staging-2", "zone": "shared"},
        headers=admin,
    ).json()
    newer = browser.post(
        f"/api/v1/memories/{first['id']}/versions",
        json={"content": "The staging database moved to db-staging-3"},
        headers=admin,
    ).json()
    csrf = _sign_in(browser, _admin(browser))
    found = browser.get("/ui/memory", params={"q": "where is the staging database"}).text
    assert "db-staging-3" in found and newer["id"] in found
    record = browser.get(f"/ui/memory/{newer['id']}").text
    assert first["id"] in record and "db-staging-2" in record  # the version chain
    asked = browser.post(f"/ui/memory/{newer['id']}/forget", data={"csrf": csrf})
    assert asked.status_code == 200 and "cannot be undone" in asked.text
    assert browser.get(f"/ui/memory/{newer['id']}").status_code == 200  # asking forgot nothing
    gone = browser.post(f"/ui/memory/{newer['id']}/forget", data={"csrf": csrf, "confirm": "yes"})
    assert gone.status_code == 303
    assert browser.get(f"/ui/memory/{newer['id']}").status_code == 404


def test_conversations_show_as_encrypted_to_anyone_but_their_owner(browser: TestClient) -> None:
    admin = {"Authorization": f"Bearer {_admin(browser)}", "Accept": "application/json"}
    ann = browser.post("/api/v1/users", json={"name": "ann", "conversations": True}, headers=admin).json()[
        "token"
    ]
    secret = "ann's long conversation secret"
    chat = {"model": "fake", "messages": [{"role": "user", "content": "my locker code is 4711"}]}
    headers = {"Authorization": f"Bearer {ann}", "X-Noosphere-Secret": secret, "X-Conversation-Id": "t1"}
    assert browser.post("/v1/chat/completions", json=chat, headers=headers).status_code == 200
    node: Node = browser.app.state.node  # type: ignore[attr-defined]

    async def kept() -> bool:
        return await node.store.count() > 0

    assert browser.portal is not None
    portal = browser.portal
    until(lambda: portal.call(kept), "the conversation is kept")  # the books write it after the answer
    _sign_in(browser, _admin(browser))
    listed = browser.get("/ui/memory").text
    assert "encrypted conversation" in listed and "4711" not in listed
    browser.post("/ui/logout", data={})
    owner = browser.post("/ui/login", data={"token": ann, "secret": secret, "next": "/ui/memory"})
    assert owner.status_code == 303
    assert "4711" in browser.get("/ui/memory").text


def test_keys_are_created_once_shown_and_revoked(browser: TestClient) -> None:
    _user(browser, "ann")
    csrf = _sign_in(browser, _admin(browser))
    made = browser.post(
        "/ui/keys",
        data={
            "user": "ann",
            "name": "laptop",
            "rpm": "60",
            "budget": "5000",
            "budget_period": "daily",
            "csrf": csrf,
        },
    )
    assert made.status_code == 200
    key = re.search(r'id="new-key">([^<]+)<', made.text)
    assert key is not None
    models = browser.get(
        "/v1/models", headers={"Authorization": f"Bearer {key[1]}", "Accept": "application/json"}
    )
    assert models.status_code == 200
    key_id = re.search(r"Created <span class=\"mono\">([^<]+)</span>", made.text)
    assert key_id is not None
    assert "laptop" in browser.get("/ui/pool").text and key[1] not in browser.get("/ui/pool").text
    assert browser.post("/ui/keys/revoke", data={"key_id": key_id[1], "csrf": csrf}).status_code == 303
    revoked = browser.get(
        "/v1/models", headers={"Authorization": f"Bearer {key[1]}", "Accept": "application/json"}
    )
    assert revoked.status_code == 401


def test_a_revoked_token_ends_its_dashboard_session(browser: TestClient) -> None:
    token = _user(browser, "bob")
    _sign_in(browser, token)
    admin = {"Authorization": f"Bearer {_admin(browser)}", "Accept": "application/json"}
    assert browser.post("/api/v1/users/bob/token", headers=admin).status_code == 200
    after = browser.get("/ui/memory")
    assert after.status_code == 303 and after.headers["location"].startswith("/ui/login")


def test_federation_is_paused_and_resumed_from_its_page(browser: TestClient) -> None:
    csrf = _sign_in(browser, _admin(browser))
    assert browser.post("/ui/federation/switch", data={"action": "pause", "csrf": csrf}).status_code == 303
    assert "all federation is paused" in browser.get("/ui/federation").text
    admin = {"Authorization": f"Bearer {_admin(browser)}", "Accept": "application/json"}
    assert browser.post("/api/v1/federation/pause", json={}, headers=admin).json()["changed"] is False
    assert browser.post("/ui/federation/switch", data={"action": "resume", "csrf": csrf}).status_code == 303
    assert "all federation is paused" not in browser.get("/ui/federation").text


def test_the_chat_page_streams_an_answer_from_the_pool(browser: TestClient) -> None:
    csrf = _sign_in(browser, _admin(browser))
    assert "fake" in browser.get("/ui/chat").text
    body = {"model": "fake", "messages": [{"role": "user", "content": "count"}]}
    streamed = browser.post("/ui/chat", json=body, headers={"X-CSRF-Token": csrf})
    assert streamed.status_code == 200 and streamed.headers["content-type"].startswith("text/event-stream")
    events = [line.removeprefix("data: ") for line in streamed.text.splitlines() if line.startswith("data: ")]
    assert "".join(re.findall(r'"text": "([^"]*)"', "".join(events))).split() == ["one", "two", "three"]
    assert '"done": true' in events[-1]
    unknown = browser.post(
        "/ui/chat",
        json={**body, "model": "nope"},
        headers={"X-CSRF-Token": csrf, "Accept": "application/json"},
    )
    assert unknown.status_code == 404


def test_every_page_renders_for_the_admin(browser: TestClient) -> None:
    _sign_in(browser, _admin(browser))
    for path in (
        "/ui",
        "/ui/approvals",
        "/ui/pool?days=30",
        "/ui/agents",
        "/ui/memory",
        "/ui/audit?verify=true",
        "/ui/federation",
        "/ui/chat",
    ):
        page = browser.get(path)
        assert page.status_code == 200, (path, page.text[:500])
    assert "verifies" in browser.get("/ui/audit?verify=true").text
    for name in ("htmx.min.js", "sse.min.js", "uPlot.iife.min.js", "dashboard.js", "dashboard.css"):
        assert browser.get(f"/ui/static/{name}").status_code == 200
    assert browser.get("/ui/static/../../config.py").status_code == 404


def test_the_pool_page_shows_spend_per_day(browser: TestClient) -> None:
    _user(browser, "ann")
    admin = {"Authorization": f"Bearer {_admin(browser)}", "Accept": "application/json"}
    key = browser.post("/api/v1/keys", json={"user": "ann", "name": "cli"}, headers=admin).json()
    chat = {"model": "fake", "messages": [{"role": "user", "content": "count"}]}
    paid = {"Authorization": f"Bearer {key['key']}", "Accept": "application/json"}
    assert browser.post("/v1/chat/completions", json=chat, headers=paid).status_code == 200
    _sign_in(browser, _admin(browser))
    page = browser.get("/ui/pool").text
    daily = page.split("Spend over time", 1)[1].split("API keys", 1)[0]
    row = re.search(rf"<td class=\"mono\">{key['id']}</td>(.*?)</tr>", daily)
    assert row is not None, daily[:2000]
    today = re.findall(r"<td>([^<]*)</td>", row[1])[-1]
    assert today != "·" and float(today) > 0  # this chat's credits, on today's column


def test_hostile_form_values_are_refused_not_failures(browser: TestClient) -> None:
    _user(browser, "ann")
    csrf = _sign_in(browser, _admin(browser))
    huge = browser.post("/ui/keys", data={"user": "ann", "rpm": "1" + "0" * 30, "csrf": csrf})
    assert huge.status_code == 400 and "rpm" in huge.text
    asked = _ask(browser, "shell_run", {"command": "true"})
    long_note = {"one": f"{asked}:reject:once", "note": "x" * 5000, "csrf": csrf}
    assert browser.post("/ui/approvals/decide", data=long_note).status_code == 400
    search = browser.get("/ui/memory", params={"q": "q" * 5000, "tag": "not a tag!"})
    assert search.status_code == 200 and 'class="error"' in search.text
    odd = {"model": "fake", "messages": [{"role": "wizard", "content": 3}]}
    refused = browser.post("/ui/chat", json=odd, headers={"X-CSRF-Token": csrf, "Accept": "application/json"})
    assert refused.status_code == 422
