"""Three real ``noosphere up`` processes as one node (``noosphere cluster``'s launcher: the
embedded PostgreSQL, nats-server, three processes on loopback). A worker joined to one process
serves chats sent to the others, streaming; killing its process mid-stream ends that stream with
an error and the worker moves to another process; budgets and rate limits hold across processes;
an agent's task survives the death of its process; a scheduled tick runs once."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from noosphere.cluster.launcher import Launcher
from noosphere.federation.records import Hello
from noosphere.federation.service import HEARTBEAT_PATH
from noosphere.federation.signing import sign
from noosphere.identity import NodeKey, load_or_create
from tests.integration.conftest import free_port
from tests.integration.slow_upstream import SlowUpstream, slow_upstream

pytestmark = [pytest.mark.postgres, pytest.mark.nats, pytest.mark.slow]

MODEL = "mock"
BASE = {
    "cluster": {"heartbeat_seconds": 0.5, "dead_after_seconds": 3.0, "lease_seconds": 3.0},
    "pool": {"checker": False, "queue_timeout_seconds": 10, "ledger_delay_ms": 0},
    "runtime": {"task_lease_seconds": 3},
    "bus": {"poll_seconds": 0.1},
    "scheduler": {"jobs": [{"name": "memory_gc", "cron": "* * * * * *"}]},
}


def until(condition: Callable[[], Any], what: str, seconds: float = 30.0) -> Any:
    deadline = time.monotonic() + seconds
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


class Cluster:
    def __init__(self, launcher: Launcher, upstream: SlowUpstream, peer: NodeKey) -> None:
        self.launcher = launcher
        self.upstream = upstream
        self.peer = peer  # a federated peer's key (the peer itself is not running)
        self.token = (launcher.directory / "admin-token").read_text().strip()
        self.workers: list[subprocess.Popen[bytes]] = []

    def url(self, i: int) -> str:
        return self.launcher.members[i].url

    def http(self, i: int, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return httpx.Client(base_url=self.url(i), headers=headers, timeout=60)

    def api(self, i: int, token: str | None = None) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url(i) + "/v1", api_key=token or self.token, max_retries=0)

    def worker(self, name: str, *joins: int, capacity: int = 2) -> subprocess.Popen[bytes]:
        """A real ``noosphere worker`` proxying to the slow upstream, joined to ``joins`` in order."""
        with self.http(0) as http:
            answer = http.post(f"/api/v1/workers/{name}/token", json={"models": [MODEL]})
            assert answer.status_code == 200, answer.text
            token = answer.json()["token"]
        command = [sys.executable, "-m", "noosphere", "worker", "--token", token, "--name", name]
        for i in joins:
            command += ["--join", self.url(i).replace("http", "ws", 1)]
        command += ["--proxy", self.upstream.url, "--proxy-model", MODEL, "--capacity", str(capacity)]
        with (self.launcher.directory / f"worker-{name}.log").open("ab") as log:
            process = subprocess.Popen(command, stdout=log, stderr=log)
        self.workers.append(process)
        return process

    def models(self, i: int) -> dict[str, Any]:
        with self.http(i) as http:
            return {m["id"]: m for m in http.get("/v1/models").json()["data"]}

    def serving(self) -> int:
        """The process one of whose own workers is running a job now."""
        for i in range(len(self.launcher.members)):
            with self.http(i) as http:
                pool = http.get("/api/v1/pool").json()
            if any(w["kind"] == "worker" and w["running"] for w in pool["workers"]):
                return i
        raise AssertionError("no process is running a job")

    def revive(self) -> None:
        """Start again the processes a test killed."""
        for member in self.launcher.members:
            if member.process is not None and member.process.poll() is not None:
                self.launcher.respawn(member)

    def kill(self, i: int) -> None:
        process = self.launcher.members[i].process
        assert process is not None
        process.send_signal(signal.SIGKILL)
        process.wait()

    def leases(self, i: int) -> dict[str, str]:
        with self.http(i) as http:
            report: dict[str, Any] = http.get("/api/v1/cluster").json()
        return dict(report["leases"])

    def index_of(self, process_name: str) -> int:
        """Which process a name reported by /api/v1/cluster is (``<host>:<port>``)."""
        return next(m.index for m in self.launcher.members if process_name.endswith(f":{m.port}"))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("cluster")
    with slow_upstream(delay=0.05, agent="scribe", task="Write the release notes.") as upstream:
        base = root / "base.yaml"
        peer = load_or_create(root / "peer")
        known = {"id": peer.id, "public_key": peer.public_text, "url": "http://127.0.0.1:9"}
        base.write_text(yaml.safe_dump({**BASE, "federation": {"peers": [known]}}))
        launcher = Launcher(root / "node", 3, free_port(), base, local_workers=0)
        workers: list[subprocess.Popen[bytes]] = []
        try:
            launcher.start()
            cluster = Cluster(launcher, upstream, peer)
            cluster.workers = workers
            yield cluster
        finally:
            for process in workers:
                process.kill()
                process.wait()
            launcher.stop()


@pytest.fixture(autouse=True)
def alive(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test of the cluster, the processes it killed run again."""
    yield
    if "cluster" in request.fixturenames:
        cluster: Cluster = request.getfixturevalue("cluster")
        cluster.revive()


def _stream(api: openai.OpenAI, tokens: int = 10) -> str:
    stream = api.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True, max_tokens=tokens
    )
    return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)


def test_a_worker_joined_to_one_process_serves_chats_sent_to_the_others(cluster: Cluster) -> None:
    cluster.worker("w1", 0, 1)
    for i in range(3):  # every process lists the model, with the worker and its slots
        listed = until(lambda i=i: cluster.models(i).get(MODEL), f"the model listed by process {i}")
        assert (listed["workers"], listed["slots"]) == (1, 2)
    for i in (1, 2):
        with cluster.api(i) as api:
            assert _stream(api, 5) == " t0 t1 t2 t3 t4"
    with cluster.http(2) as http:  # metered where they arrived, to the worker that served them
        usage = http.get("/api/v1/usage", params={"by": "worker"}).json()
    assert any(row["group"] == "worker:w1" and row["requests"] >= 2 for row in usage), usage
    with cluster.http(1) as http:  # and its metrics say so
        metrics = http.get("/metrics").text
    assert "noosphere_cluster_processes 3.0" in metrics
    sent = re.search(r'noosphere_cluster_jobs_total\{event="sent"\} (\S+)', metrics)
    assert sent is not None and float(sent.group(1)) >= 1, metrics


def test_budget_and_rate_limits_hold_across_processes(cluster: Cluster) -> None:
    until(lambda: all(cluster.models(i).get(MODEL) for i in range(3)), "the model everywhere")
    with cluster.http(0) as http:
        assert http.post("/api/v1/users", json={"name": "ann"}).status_code == 201
        budgeted = http.post("/api/v1/keys", json={"user": "ann", "name": "b", "budget": 150}).json()
        limited = http.post("/api/v1/keys", json={"user": "ann", "name": "r", "rpm": 4}).json()
    assert budgeted["budget"] == 150 and limited["rpm"] == 4

    def chat(i: int, token: str) -> int:
        with cluster.http(i % 3, token) as http:
            body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
            return http.post("/v1/chat/completions", json=body).status_code

    with ThreadPoolExecutor(12) as pool:
        budget_codes = list(pool.map(lambda i: chat(i, budgeted["key"]), range(24)))
    assert 402 in budget_codes or 429 in budget_codes, budget_codes
    with cluster.http(1) as http:
        spent = http.get("/api/v1/keys").json()
    (row,) = [k for k in spent if k["id"] == budgeted["id"]]
    assert 0 < row["spent"] <= 150, row  # never past the budget, whichever process answered

    with ThreadPoolExecutor(6) as pool:
        rate_codes = list(pool.map(lambda i: chat(i, limited["key"]), range(9)))
    assert rate_codes.count(200) == 4 and rate_codes.count(429) == 5, rate_codes


def test_a_scheduled_tick_runs_once_across_the_processes(cluster: Cluster) -> None:
    with cluster.http(0) as http:

        def runs() -> list[dict[str, Any]]:
            answer = http.get("/api/v1/jobs/runs", params={"job": "memory_gc", "limit": 200})
            return list(answer.json())

        until(lambda: len(runs()) >= 4, "four ticks of the every-second job", seconds=60)
        ticks = [r["tick"] for r in runs()]
    assert len(ticks) == len(set(ticks)), ticks  # three processes fire each tick; one runs it


def test_an_agent_task_survives_the_death_of_its_process(cluster: Cluster) -> None:
    until(lambda: all(cluster.models(i).get(MODEL) for i in range(3)), "the model everywhere")
    with cluster.http(0) as http:
        planner = {"name": "planner", "level": "L1", "tools": ["delegate"], "plan": ["delegate", "reply"]}
        scribe = {"name": "scribe", "level": "L2", "serve": True}
        for profile in (planner, scribe):
            answer = http.post("/api/v1/agents", json={"max_steps": 2, "model": MODEL, **profile})
            assert answer.status_code == 201, answer.text
    holder = until(lambda: cluster.leases(0).get("agent:scribe"), "a process serving the scribe")
    index = cluster.index_of(holder)
    runner = next(i for i in range(3) if i != index)

    def run() -> dict[str, Any]:
        with cluster.http(runner) as http:
            task = {"task": "release notes", "stream": False}
            answer = http.post("/api/v1/agents/planner/run", json=task, timeout=120)
            assert answer.status_code == 200, answer.text
            result: dict[str, Any] = answer.json()
            return result

    with ThreadPoolExecutor(1) as pool:
        planned = pool.submit(run)
        with cluster.http(runner) as http:
            task = until(
                lambda: [t for t in http.get("/api/v1/tasks").json() if t["status"] == "accepted"],
                "the scribe accepting the task",
            )[0]
            cluster.kill(index)  # mid-run: the task's lease lapses, another process resumes it
            done = until(
                lambda: http.get(f"/api/v1/tasks/{task['id']}").json()["status"] == "completed",
                "the task completed by another process",
                seconds=90,
            )
            assert done
            record = http.get(f"/api/v1/tasks/{task['id']}").json()
        assert record["attempts"] >= 1, record
        result = planned.result(timeout=120)
    assert result["calls"][0] == {"tool": "delegate", "outcome": "ok"}
    with cluster.http(runner) as http:  # the delegator heard that its task was resumed
        told = http.post("/api/v1/bus/mailboxes/planner/receive", json={"limit": 100}).json()
    heard = [(m["envelope"]["kind"], m["envelope"]["payload"].get("status")) for m in told]
    assert ("STATUS", "resumed") in heard, heard
    assert ("TASK_COMPLETE", "completed") in heard, heard
    assert list(cluster.leases(runner)).count("agent:scribe") == 1  # one process serves it


def test_a_client_leaving_stops_its_job_on_the_process_that_serves_it(cluster: Cluster) -> None:
    until(lambda: cluster.models(0).get(MODEL, {}).get("free_slots") == 2, "an idle worker")
    with cluster.api(2) as api:
        stream = api.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True, max_tokens=600
        )
        for n, _ in enumerate(stream):  # a 30-second answer; leave after a few tokens
            if n == 3:
                break
        assert cluster.models(0)[MODEL]["free_slots"] == 1
        stream.close()
    # The worker's slot is free again long before the answer would have ended.
    until(lambda: cluster.models(0)[MODEL]["free_slots"] == 2, "the job stopped on its worker", 10)


def test_killing_the_workers_process_mid_stream_is_an_in_stream_error_and_the_worker_moves(
    cluster: Cluster,
) -> None:
    cluster.worker("w2", 0, 1)
    until(lambda: cluster.models(2).get(MODEL, {}).get("workers", 0) >= 2, "both workers listed")
    with cluster.api(2) as api:
        stream = api.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True, max_tokens=400
        )
        got = []
        with pytest.raises(openai.APIError, match=r"stopped|lost"):  # noqa: PT012 - the error arrives mid-stream
            for chunk in stream:
                got.append(chunk)
                if len(got) == 5:
                    cluster.kill(cluster.serving())  # the process whose worker streams the answer
        assert len(got) >= 5
    # Its worker moves to another process; the next request, sent to process 2, is served.
    until(lambda: cluster.models(2).get(MODEL, {}).get("workers", 0) >= 2, "the workers rejoined", 30)
    with cluster.api(2) as api:
        assert _stream(api, 3) == " t0 t1 t2"


def test_the_audit_log_of_every_process_is_one_log_signed_by_the_node(cluster: Cluster) -> None:
    with cluster.http(1) as http:
        heads = http.get("/api/v1/audit/heads").json()
        entries = http.get("/api/v1/audit", params={"limit": 1000}).json()
    assert [e["seq"] for e in entries] == list(range(len(entries)))  # one sequence, no gaps
    assert heads["heads"], "the process holding the signer's lease signed heads"
    verified = subprocess.run(
        [sys.executable, "-m", "noosphere", "audit", "verify", "--data-dir", str(cluster.launcher.directory)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_peers_request_replayed_to_another_process_is_refused(cluster: Cluster) -> None:
    with cluster.http(0) as http:
        node = http.get("/api/v1/cluster").json()["node"]
    hello = Hello(id=cluster.peer.id, name="peer", version="test", time=time.time())
    body = hello.model_dump_json().encode()
    signed = sign(cluster.peer, node, "POST", HEARTBEAT_PATH, body)

    def post(i: int) -> tuple[int, str]:
        answer = httpx.post(cluster.url(i) + HEARTBEAT_PATH, content=body, headers=signed, timeout=10)
        return answer.status_code, answer.json().get("error", {}).get("code", "")

    assert post(0)[0] == 200
    assert post(1) == (401, "replayed")  # another process has seen it too
    assert post(0) == (401, "replayed")


def test_cluster_up_starts_the_engines_and_processes_and_stops_them_all(tmp_path: Path) -> None:
    data, port = tmp_path / "cluster", free_port()
    command = [sys.executable, "-m", "noosphere", "cluster", "up", "--processes", "2"]
    command += ["--data-dir", str(data), "--port", str(port), "--local-workers", "0"]

    def ready(i: int) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port + i}/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    with (tmp_path / "launcher.log").open("wb") as log:
        launcher = subprocess.Popen(command, stdout=log, stderr=log)
    try:
        until(lambda: ready(0) and ready(1), "both processes ready", seconds=120)
        token = (data / "admin-token").read_text().strip()
        status = subprocess.run(
            [sys.executable, "-m", "noosphere", "cluster", "status", "--data-dir", str(data), "--json"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert status.returncode == 0, status.stderr
        assert len(json.loads(status.stdout)["processes"]) == 2
        headers = {"Authorization": f"Bearer {token}"}
        made = httpx.post(f"http://127.0.0.1:{port + 1}/api/v1/users", json={"name": "bo"}, headers=headers)
        assert made.status_code == 201  # one node: what one process writes, the other has
        listed = httpx.get(f"http://127.0.0.1:{port}/api/v1/users", headers=headers).json()
        assert "bo" in {u["name"] for u in listed}
    finally:
        launcher.send_signal(signal.SIGTERM)
        launcher.wait(timeout=90)
    assert not ready(0) and not ready(1)
    log_text = (tmp_path / "launcher.log").read_text()
    assert "cluster stopped" in log_text, log_text
