"""The dashboard in a real browser: Debian's Chromium, headless, driven by Playwright, against a
real node process with its real local llama.cpp worker. Screenshots go to test-artifacts/dashboard/.

An agent outside the node (a thread with an agent's token) asks to forget a memory; a person
approves it on the approvals page, which shows the request as it arrives (server-sent events);
the agent's repeated call then goes through."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, sync_playwright

from tests.integration.conftest import free_port, start_node, wait_ready
from tests.pool.conftest import wait_for_model

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"
MODEL = "smollm2-135m-instruct"
LAUNCH = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="Debian's chromium is not installed (make install does)"
    ),
]


@dataclass
class Served:
    url: str
    admin: str
    process: subprocess.Popen[str]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data, port = tmp_path_factory.mktemp("browser") / "node", free_port()
    process = start_node(data, port)  # with the local SmolLM2 worker
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(process, url)
        admin = (data / "admin-token").read_text().strip()
        wait_for_model(url, admin, MODEL)
        yield Served(url, admin, process)
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)


@pytest.fixture
def page(served: Served) -> Iterator[Page]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH)
        context = browser.new_context(viewport={"width": 1366, "height": 900})
        tab = context.new_page()
        tab.set_default_timeout(30_000)
        try:
            yield tab
        finally:
            context.close()
            browser.close()


def _sign_in(page: Page, served: Served) -> None:
    page.goto(f"{served.url}/ui")
    page.wait_for_url("**/ui/login**")
    page.fill("input[name=token]", served.admin)
    page.click("button[type=submit]")
    page.wait_for_url(f"{served.url}/ui")


def test_signing_in_shows_the_overview(page: Page, served: Served) -> None:
    page.goto(f"{served.url}/ui/login")
    page.fill("input[name=token]", "wrong")
    page.click("button[type=submit]")
    assert page.locator("[role=alert]").inner_text().startswith("that token is not valid")
    _sign_in(page, served)
    text = page.locator("main").inner_text()
    assert "Overview" in text and "Background loops" in text and MODEL in text
    page.screenshot(path=str(ARTIFACTS / "overview.png"), full_page=True)


def test_approving_a_pending_request_lets_the_agent_go_on(page: Page, served: Served) -> None:
    admin = {"Authorization": f"Bearer {served.admin}"}
    agent = httpx.post(f"{served.url}/api/v1/agents", json={"name": "tidier", "level": "L2"}, headers=admin)
    token = agent.json()["token"]
    as_agent = {"Authorization": f"Bearer {token}"}
    memory = httpx.post(
        f"{served.url}/api/v1/memories",
        json={"content": "an outdated note about the old VPN"},
        headers=as_agent,
    ).json()
    _sign_in(page, served)
    page.goto(f"{served.url}/ui/approvals")
    assert "Nothing waits for you" in page.locator("#approvals-live").inner_text()

    outcome: dict[str, int] = {}

    def agent_forgets() -> None:
        """What an agent does: call, hear that a person must approve, call again until it may."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            answer = httpx.delete(f"{served.url}/api/v1/memories/{memory['id']}", headers=as_agent)
            if answer.status_code != 403:
                outcome["status"] = answer.status_code
                return
            assert answer.json()["error"]["code"] == "approval_required"
            time.sleep(0.2)

    worker = threading.Thread(target=agent_forgets)
    worker.start()
    try:
        # the request appears without a reload (server-sent events)
        card = page.locator("article.approval")
        card.wait_for()
        assert "memory_forget" in card.inner_text() and memory["id"] in card.inner_text()
        page.screenshot(path=str(ARTIFACTS / "approvals.png"), full_page=True)
        card.locator("button", has_text="Approve once").click()
        page.wait_for_url(f"{served.url}/ui/approvals")
        worker.join(timeout=60)
    finally:
        worker.join(timeout=60)
    assert outcome.get("status") == 204  # the agent went on: its call went through
    gone = httpx.get(f"{served.url}/api/v1/memories/{memory['id']}", headers=as_agent)
    assert gone.status_code == 404
    decided = page.locator("main").inner_text()
    assert "approved" in decided and "admin" in decided


def test_searching_memory_finds_by_meaning(page: Page, served: Served) -> None:
    admin = {"Authorization": f"Bearer {served.admin}"}
    for content in ("The staging database lives on db-staging-2", "Lunch is at noon on Fridays"):
        httpx.post(
            f"{served.url}/api/v1/memories", json={"content": content, "zone": "shared"}, headers=admin
        )
    _sign_in(page, served)
    page.goto(f"{served.url}/ui/memory")
    page.fill("input[name=q]", "where is the staging DB?")
    page.click("form.search button[type=submit]")
    page.wait_for_url("**/ui/memory?q=*")
    first = page.locator("tr.hit").first
    assert "db-staging-2" in first.inner_text()
    page.screenshot(path=str(ARTIFACTS / "memory.png"), full_page=True)


def test_the_chat_page_streams_an_answer_from_the_local_worker(page: Page, served: Served) -> None:
    _sign_in(page, served)
    page.goto(f"{served.url}/ui/chat")
    page.select_option("#chat-model", MODEL)
    page.fill("#chat-input", "Say hello in one short sentence.")
    page.click("#chat-send")
    page.wait_for_function(
        "document.getElementById('chat-status').textContent.endsWith('tokens')", timeout=120_000
    )
    answer = page.locator(".chat-log .assistant").inner_text()
    assert answer.strip(), "the model said nothing"
    page.screenshot(path=str(ARTIFACTS / "chat.png"), full_page=True)
    assert os.path.getsize(ARTIFACTS / "chat.png") > 0
