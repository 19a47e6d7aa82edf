"""Three real ``noosphere up`` processes on loopback, each reaching the others through a proxy the
test controls. Writes on all three; one node cut off, both sides editing the same memory; healed:
no acknowledged write is lost, and every node settles on the same current version. A forged,
replayed or tampered request to a real node fails."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from noosphere.federation.service import HEARTBEAT_PATH
from noosphere.federation.signing import sign
from noosphere.identity import NodeKey, load_or_create
from tests.integration.conftest import free_port, start_node, wait_ready
from tests.integration.faulty_proxy import FaultyProxy

N = 3


class Cluster:
    def __init__(self, root: Path) -> None:
        self.dirs = [root / f"n{i}" for i in range(N)]
        self.keys: list[NodeKey] = [load_or_create(d) for d in self.dirs]
        self.ports = [free_port() for _ in range(N)]
        # proxies[(i, j)]: how node i reaches node j
        self.proxies = {(i, j): FaultyProxy(self.ports[j]) for i in range(N) for j in range(N) if i != j}
        self.configs = []
        for i in range(N):
            peers = [
                {
                    "id": self.keys[j].id,
                    "public_key": self.keys[j].public_text,
                    "url": self.proxies[(i, j)].url,
                }
                for j in range(N)
                if j != i
            ]
            config = {
                "name": f"n{i}",
                "pool": {"checker": False},
                "scheduler": {"enabled": False},
                "federation": {"peers": peers, "heartbeat_seconds": 0.3, "repair_seconds": 1.0},
            }
            path = root / f"n{i}.yaml"
            path.write_text(yaml.safe_dump(config))
            self.configs.append(path)

    def url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.ports[i]}"

    def token(self, i: int) -> str:
        return (self.dirs[i] / "admin-token").read_text().strip()

    def isolate(self, k: int, cut: bool) -> None:
        for (i, j), proxy in self.proxies.items():
            if k in (i, j):
                proxy.set_cut(cut)

    def remember(self, i: int, content: str, **extra: Any) -> str:
        answer = httpx.post(
            self.url(i) + "/api/v1/memories",
            json={"content": content, "zone": "federated", **extra},
            headers={"Authorization": f"Bearer {self.token(i)}"},
        )
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])

    def get(self, i: int, memory_id: str) -> dict[str, Any] | None:
        answer = httpx.get(
            self.url(i) + f"/api/v1/memories/{memory_id}",
            headers={"Authorization": f"Bearer {self.token(i)}"},
        )
        return dict(answer.json()) if answer.status_code == 200 else None

    def peers(self, i: int) -> dict[str, str]:
        return dict(httpx.get(self.url(i) + "/readyz").json().get("peers", {}))


def _until(check: Callable[[], bool], what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    made = Cluster(tmp_path)
    processes = [
        start_node(made.dirs[i], made.ports[i], "--config", str(made.configs[i]), "--no-local-worker")
        for i in range(N)
    ]
    try:
        for i, process in enumerate(processes):
            wait_ready(process, made.url(i))
        yield made
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stderr is not None:
                process.stderr.close()
        for proxy in made.proxies.values():
            proxy.close()


def test_a_partition_heals_with_nothing_lost_and_one_current_version_everywhere(cluster: Cluster) -> None:
    everyone = {key.id for key in cluster.keys}
    for i in range(N):
        _until(
            lambda i=i: (
                set(cluster.peers(i)) == everyone - {cluster.keys[i].id}
                and set(cluster.peers(i).values()) == {"alive"}
            ),
            f"node {i} never heard its peers",
        )
    base = cluster.remember(0, "the nightly backup runs at 02:00")
    written = [base] + [cluster.remember(i, f"node {i} fact {n}") for i in range(N) for n in range(3)]
    _until(lambda: all(cluster.get(i, m) for i in range(N) for m in written), "writes did not spread")

    cluster.isolate(2, True)  # node 2 is cut off from both others
    _until(lambda: cluster.peers(0).get(cluster.keys[2].id) != "alive", "node 0 still hears node 2")
    # Split brain: both sides change the same memory, and write more.
    left = cluster.remember(0, "the nightly backup runs at 03:00", supersedes=base)
    right = cluster.remember(2, "the nightly backup runs at 04:00", supersedes=base)
    written += [
        left,
        right,
        cluster.remember(1, "written on the majority side"),
        cluster.remember(2, "alone"),
    ]
    time.sleep(1.0)
    assert cluster.get(2, left) is None and cluster.get(0, right) is None  # the cut holds

    cluster.isolate(2, False)
    _until(
        lambda: all(cluster.get(i, m) for i in range(N) for m in written), "an acknowledged write was lost"
    )
    edits = [cluster.get(0, left), cluster.get(0, right)]
    assert all(edits)
    winner = max(edits, key=lambda m: (m["hlc"], m["origin"]))  # type: ignore[index]
    assert winner is not None

    def settled() -> bool:
        for i in range(N):
            current = {m: (cluster.get(i, m) or {}).get("invalid_at") is None for m in (base, left, right)}
            if current != {base: False, left: winner["id"] == left, right: winner["id"] == right}:
                return False
        return True

    _until(settled, "the nodes did not settle on the same current version")

    # A real node refuses what does not prove a peer sent it.
    stranger = load_or_create(cluster.dirs[0].parent / "stranger")
    body = orjson.dumps({"id": cluster.keys[0].id, "name": "n0", "version": "0", "time": time.time()})
    target = cluster.keys[1].id

    def post(headers: dict[str, str], sent: bytes) -> tuple[int, str | None]:
        answer = httpx.post(cluster.url(1) + HEARTBEAT_PATH, content=sent, headers=headers)
        return answer.status_code, (answer.json().get("error") or {}).get("code")

    assert post(sign(stranger, target, "POST", HEARTBEAT_PATH, body), body) == (401, "unknown_peer")
    genuine = sign(cluster.keys[0], target, "POST", HEARTBEAT_PATH, body)
    assert post(genuine, body)[0] == 200
    assert post(genuine, body) == (401, "replayed")
    fresh = sign(cluster.keys[0], target, "POST", HEARTBEAT_PATH, body)
    assert post(fresh, body + b" ") == (401, "bad_signature")
