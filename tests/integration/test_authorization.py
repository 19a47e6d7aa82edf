"""The authorization table, tried for real: every HTTP route, the worker socket and every MCP tool
called with a credential of every kind. What a row allows is not refused by the table; what it does
not allow is (401 without a token, 403 with one)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi.testclient import TestClient
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from noosphere.auth.permissions import CALLERS, TABLE, Role, authorize
from noosphere.auth.principal import PrincipalKind
from noosphere.config import load_settings
from noosphere.embeddings.minilm import MiniLMEmbedder
from noosphere.errors import PermissionDenied
from noosphere.node import Node
from noosphere.pool.protocol import Hello, ModelOffer
from noosphere.scheduler.scheduler import job_principal
from noosphere.server.app import create_app
from noosphere.testing import FakeModel
from tests.integration.conftest import Live, serve_live

REFUSED = re.compile(r"is not open to ")
METRICS_TOKEN = "metrics-token-for-the-scraper"


@dataclass(frozen=True)
class Caller:
    role: Role
    token: str | None
    mailbox: str
    owner: str


def _callers(client: TestClient, admin: str) -> list[Caller]:
    headers = {"Authorization": f"Bearer {admin}"}
    callers = [Caller(Role.ANYONE, None, "nobody", "nobody"), Caller(Role.ADMIN, admin, "admin", "admin")]
    user = client.post("/api/v1/users", json={"name": "ann"}, headers=headers).json()["token"]
    callers.append(Caller(Role.USER, user, "user:ann", "user:ann"))
    for level in ("L0", "L1", "L2", "L3"):
        made = client.post("/api/v1/agents", json={"name": f"a{level}", "level": level}, headers=headers)
        callers.append(Caller(Role(f"agent-{level}"), made.json()["token"], f"a{level}", f"agent:a{level}"))
    node: Node = client.app.state.node  # type: ignore[attr-defined]
    assert client.portal is not None
    _, key = client.portal.call(node.auth.create_api_key, "ann")
    callers.append(Caller(Role.KEY, key, "user:ann", "user:ann"))
    worker = client.portal.call(node.auth.issue, PrincipalKind.WORKER, "w1")
    callers.append(Caller(Role.WORKER, worker, "worker:w1", "worker:w1"))
    callers.append(Caller(Role.METRICS, METRICS_TOKEN, "nobody", "nobody"))
    return callers


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, minilm: MiniLMEmbedder
) -> Iterator[tuple[TestClient, list[Caller]]]:
    data = tmp_path_factory.mktemp("authz") / "node"
    settings = load_settings(
        None,
        data_dir=data,
        pool={"checker": False},
        scheduler={"enabled": False},
        auth={"metrics_token": METRICS_TOKEN},
    )
    app = create_app(settings, embedder=minilm, backends=[("fake", FakeModel("fake", reply="ok"))])
    with TestClient(app) as client:
        admin = (data / "admin-token").read_text().strip()
        yield client, _callers(client, admin)


def _request(route: str, caller: Caller) -> tuple[str, str, dict[str, Any]]:
    method, path = route.split(" ", 1)
    path = (
        path.replace("{memory_id}", "m_missing")
        .replace("{name}", "nobody")
        .replace("{mailbox}", caller.mailbox)
        .replace("{approval_id}", "missing")
        .replace("{task_id}", "missing")
        .replace("{key_id}", "key_missing")
        .replace("{peer_id}", "node-missing")
        .replace("{topic}", "nope")
    )
    options: dict[str, Any] = {}
    if method in ("POST", "PUT"):
        options["json"] = {}
    if route == "DELETE /api/v1/memories":
        options["params"] = {"owner": caller.owner}
    if route == "DELETE /api/v1/bus/subscriptions":
        options["params"] = {"pattern": "x.y"}
    if caller.token is not None:
        options["headers"] = {"Authorization": f"Bearer {caller.token}"}
    return method, path, options


HTTP_ROWS = [g for g in TABLE if g.surface == "http"]


@pytest.mark.parametrize("grant", HTTP_ROWS, ids=[g.name for g in HTTP_ROWS])
def test_each_http_route_lets_in_exactly_the_roles_of_its_row(
    served: tuple[TestClient, list[Caller]], grant: Any
) -> None:
    client, callers = served
    for caller in callers:
        method, path, options = _request(grant.name, caller)
        response = client.request(method, path, follow_redirects=False, **options)
        allowed = Role.ANYONE in grant.roles or caller.role in grant.roles
        text = response.text
        if allowed:
            assert response.status_code != 401, (caller.role, text)
            assert not (response.status_code == 403 and REFUSED.search(text)), (caller.role, text)
        elif caller.token is None or caller.role is Role.METRICS:  # the metrics token is no principal
            assert response.status_code == 401, (caller.role, response.status_code, text)
        else:
            assert response.status_code == 403 and REFUSED.search(text), (
                caller.role,
                response.status_code,
                text,
            )


def test_only_workers_and_the_admin_join_the_pool(served: tuple[TestClient, list[Caller]]) -> None:
    client, callers = served
    for caller in callers:
        if caller.token is None:
            continue
        with client.websocket_connect("/ws/worker") as ws:
            hello = Hello(token=caller.token, name="probe", models=[ModelOffer(name="probe-model")])
            ws.send_text(hello.model_dump_json())
            reply = ws.receive_json()
            joined = reply["type"] == "accepted"
            assert joined == (caller.role in (Role.WORKER, Role.ADMIN)), (caller.role, reply)


def test_a_job_may_call_nothing_from_outside() -> None:
    job = job_principal("memory_gc")
    for grant in TABLE:
        if Role.ANYONE in grant.roles:
            continue
        with pytest.raises(PermissionDenied):
            authorize(grant.surface, grant.name, job)
    assert Role.JOB in CALLERS


MCP_ARGS: dict[str, dict[str, Any]] = {
    "memory_store": {"content": "x"},
    "memory_store_many": {"items": [{"content": "y"}]},
    "memory_search": {"query": "x"},
    "memory_get": {"id": "missing"},
    "memory_list": {},
    "memory_forget": {"id": "missing"},
    "memory_update": {"id": "missing", "content": "x"},
    "memory_history": {"id": "missing"},
    "bus_send": {"kind": "EVENT", "recipient": "someone"},
    "bus_receive": {},
    "bus_ack": {"ids": []},
    "bus_subscribe": {"pattern": "x.y"},
    "approvals_list": {},
    "approval_decide": {"id": "missing", "verdict": "approve"},
    "run_agent": {"agent": "nobody", "task": "x"},
}


async def _mcp_results(url: str, token: str) -> dict[str, str]:
    out: dict[str, str] = {}
    http = httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
    async with http, Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client:
        for tool, args in MCP_ARGS.items():
            result = await client.call_tool(tool, args)
            out[tool] = str(result.content[0].text if result.is_error else "")  # type: ignore[union-attr]
    return out


def test_each_mcp_tool_lets_in_exactly_the_roles_of_its_row(tmp_path: Path, minilm: MiniLMEmbedder) -> None:
    with serve_live(tmp_path / "node", minilm) as live:
        callers = _live_callers(live)
        rows = {g.name: g for g in TABLE if g.surface == "mcp"}
        assert set(rows) == set(MCP_ARGS)
        for role, token in callers.items():  # keys and workers never reach /mcp: see the HTTP rows
            results = anyio.run(_mcp_results, live.url, token)
            for tool, error in results.items():
                refused = bool(REFUSED.search(error))
                assert refused == (role not in rows[tool].roles), (role, tool, error)


def _live_callers(live: Live) -> dict[Role, str]:
    admin = {"Authorization": f"Bearer {live.admin_token}"}
    tokens = {Role.ADMIN: live.admin_token}
    tokens[Role.USER] = httpx.post(f"{live.url}/api/v1/users", json={"name": "ann"}, headers=admin).json()[
        "token"
    ]
    for level in ("L0", "L1", "L2", "L3"):
        made = httpx.post(
            f"{live.url}/api/v1/agents", json={"name": f"a{level}", "level": level}, headers=admin
        )
        tokens[Role(f"agent-{level}")] = made.json()["token"]
    return tokens
