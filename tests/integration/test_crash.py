"""kill -9 during a burst of acknowledged writes of every kind — memories, bus messages, chat
answers paid for with a metered API key (ledger entries), approval requests and decisions — then
restart on the same data directory: nothing the node acknowledged is missing.

The ledger runs with ``pool.ledger_delay_ms: 0`` here, the setting that pays for an answer before
its last byte goes out; with the default (25 ms of group commit) the last moments' usage may be
lost, as tests/pool/test_accounting_durability.py measures and docs/gateway.md says."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx
import pytest

from tests.integration.conftest import free_port, start_node, wait_ready

pytestmark = pytest.mark.slow
BURST_SECONDS = 4.0
MOCK = "mock"


@dataclass
class Acknowledged:
    memories: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    answers: int = 0
    pending: list[str] = field(default_factory=list)  # approval requests the node told an agent about
    approved: list[str] = field(default_factory=list)


@dataclass
class Node:
    data: Path
    config: Path
    port: int
    process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = start_node(self.data, self.port, "--no-local-worker", "--config", str(self.config))
        wait_ready(self.process, self.url)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.communicate(timeout=30)
        assert self.process.returncode == -signal.SIGKILL

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.communicate(timeout=60)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    mock_port = free_port()
    mock = subprocess.Popen([sys.executable, "-m", "bench.mock_openai", str(mock_port)])
    config = tmp_path / "node.yaml"
    config.write_text(
        "pool:\n  checker: false\n  ledger_delay_ms: 0\n  upstreams:\n"
        f"    - {{name: mock, base_url: 'http://127.0.0.1:{mock_port}/v1', models: [{MOCK}], "
        "max_concurrency: 8}\n"
    )
    served = Node(tmp_path / "node", config, free_port())
    try:
        yield served
    finally:
        served.stop()
        mock.terminate()
        mock.wait(timeout=30)


def _admin(node: Node) -> dict[str, str]:
    return {"Authorization": f"Bearer {(node.data / 'admin-token').read_text().strip()}"}


async def _burst(node: Node, agent: str, key: str, seen: Acknowledged) -> None:
    """Every kind of write at once, each writer counting only what the node acknowledged, until
    the node dies under them."""
    admin = _admin(node)
    as_agent = {"Authorization": f"Bearer {agent}"}

    async def memories(client: httpx.AsyncClient, n: int) -> None:
        for i in range(100_000):
            answer = await client.post(
                "/api/v1/memories", json={"content": f"writer {n} note {i}"}, headers=admin
            )
            if answer.status_code == 201:
                seen.memories.append(answer.json()["id"])

    async def messages(client: httpx.AsyncClient) -> None:
        for i in range(100_000):
            body = {"kind": "EVENT", "recipient": "crashbox", "payload": {"i": i}}
            answer = await client.post("/api/v1/bus/messages", json=body, headers=admin)
            if answer.status_code == 200:
                seen.messages.append(answer.json()["id"])

    async def chats(client: httpx.AsyncClient) -> None:
        body = {"model": MOCK, "messages": [{"role": "user", "content": "hi"}]}
        while True:
            answer = await client.post(
                "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
            )
            if answer.status_code == 200:
                seen.answers += 1

    async def approvals(client: httpx.AsyncClient) -> None:
        for i in range(100_000):
            mine = await client.post(
                "/api/v1/memories", json={"content": f"agent note {i}"}, headers=as_agent
            )
            if mine.status_code != 201:
                continue
            asked = await client.delete(f"/api/v1/memories/{mine.json()['id']}", headers=as_agent)
            if asked.status_code != 403:
                continue
            approval = asked.json()["error"]["approval_id"]
            seen.pending.append(approval)
            if i % 2 == 0:
                decided = await client.post(f"/api/v1/approvals/{approval}/approve", json={}, headers=admin)
                if decided.status_code == 200:
                    seen.approved.append(approval)

    async def writer(work: object, *args: object) -> None:
        async with httpx.AsyncClient(base_url=node.url, timeout=10) as client:
            try:
                await work(client, *args)  # type: ignore[operator]
            except httpx.HTTPError:
                return  # the node is gone: what was acknowledged is counted

    async with anyio.create_task_group() as group:
        for n in range(2):
            group.start_soon(writer, memories, n)
        group.start_soon(writer, messages)
        for _ in range(2):
            group.start_soon(writer, chats)
        group.start_soon(writer, approvals)
        await anyio.sleep(BURST_SECONDS)
        node.kill()  # mid-burst: requests in every state
        await anyio.sleep(0.5)
        group.cancel_scope.cancel()


def test_nothing_acknowledged_is_lost_to_a_kill_9(node: Node) -> None:
    node.start()
    admin = _admin(node)
    agent = httpx.post(f"{node.url}/api/v1/agents", json={"name": "crashbox", "level": "L2"}, headers=admin)
    httpx.post(f"{node.url}/api/v1/users", json={"name": "payer"}, headers=admin).raise_for_status()
    key = httpx.post(f"{node.url}/api/v1/keys", json={"user": "payer", "budget": 1e12}, headers=admin)
    seen = Acknowledged()
    anyio.run(_burst, node, agent.json()["token"], key.json()["key"], seen)
    assert seen.memories and seen.messages and seen.answers and seen.pending, seen

    node.start()  # the same data directory, after a kill -9
    with httpx.Client(base_url=node.url, headers=admin, timeout=30) as client:
        for memory_id in seen.memories:
            assert client.get(f"/api/v1/memories/{memory_id}").status_code == 200, memory_id
        delivered: set[str] = set()
        for _ in range(1000):
            got = client.post("/api/v1/bus/mailboxes/crashbox/receive", json={"limit": 1000}).json()
            if not got:
                break
            ids = [d["envelope"]["id"] for d in got]
            delivered.update(ids)
            client.post("/api/v1/bus/mailboxes/crashbox/ack", json={"ids": ids})
        assert set(seen.messages) <= delivered, set(seen.messages) - delivered
        usage = client.get("/api/v1/usage", params={"by": "key_id"}).json()
        assert sum(row["requests"] for row in usage) >= seen.answers
        for approval in seen.pending:
            record = client.get(f"/api/v1/approvals/{approval}")
            assert record.status_code == 200, approval
            if approval in seen.approved:
                assert record.json()["status"] == "approved", record.json()
