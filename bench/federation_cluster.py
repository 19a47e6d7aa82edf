"""Federation between real nodes on loopback: each node a full noosphere app with its own
uvicorn server and event loop (in threads of this process, sharing one embedder), its own SQLite
store and key, every node the peer of every other, default intervals (heartbeat 2 s).

- **Convergence**: an L1 agent writes a federated memory on one node (REST, its own token); how
  long until the memory can be read on the first other node, and on all of them; for 2, 5 and 10
  nodes. A write rings the peers' doorbells, so this is not the heartbeat interval.
- **Remote search**: a user's search on one node, without and with ``include_federation`` (its
  one peer holds a disjoint set of 2,000 federated memories), side by side in the same run.
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from bench.corpus import texts
from bench.report import percentiles, write_section
from noosphere.config import Settings, load_settings
from noosphere.embeddings.minilm import MiniLMEmbedder
from noosphere.identity import NodeKey, load_or_create
from noosphere.server.app import create_app

SIZES = [2, 5, 10]
WRITES = 20
SEARCHES = 100
REMOTE_MEMORIES = 2000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(data: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "noosphere", *args],
        env={"NOOSPHERE_DATA_DIR": str(data), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


@contextlib.contextmanager
def serve_node(settings: Settings, embedder: MiniLMEmbedder) -> Iterator[str]:
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, embedder=embedder),
            host="127.0.0.1",
            port=settings.server.port,
            log_level="warning",
            lifespan="on",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("a node did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{settings.server.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)


class Mesh:
    """``n`` nodes, each the peer of every other."""

    def __init__(
        self, root: Path, n: int, options: dict[str, Any] | None = None, heartbeat: float = 2.0
    ) -> None:
        self.dirs = [root / f"n{i}" for i in range(n)]
        self.keys: list[NodeKey] = [load_or_create(d) for d in self.dirs]
        self.ports = [free_port() for _ in range(n)]
        self.settings = []
        for i in range(n):
            peers = [
                {
                    "id": key.id,
                    "public_key": key.public_text,
                    "url": f"http://127.0.0.1:{self.ports[j]}",
                    **(options or {}),
                }
                for j, key in enumerate(self.keys)
                if j != i
            ]
            self.settings.append(
                load_settings(
                    None,
                    data_dir=self.dirs[i],
                    name=f"n{i}",
                    server={"port": self.ports[i]},
                    pool={"checker": False, "local_worker": False},
                    scheduler={"enabled": False},
                    federation={"peers": peers, "heartbeat_seconds": heartbeat},
                )
            )

    @contextlib.contextmanager
    def running(self, embedder: MiniLMEmbedder) -> Iterator[list[str]]:
        with contextlib.ExitStack() as stack:
            urls = [stack.enter_context(serve_node(s, embedder)) for s in self.settings]
            deadline = time.monotonic() + 120
            for url in urls:
                while set(httpx.get(url + "/readyz").json().get("peers", {}).values()) != {"alive"}:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the nodes never all heard each other")
                    time.sleep(0.1)
            yield urls


def _convergence(root: Path, n: int, embedder: MiniLMEmbedder) -> str:
    mesh = Mesh(root / f"mesh{n}", n)
    tokens = [_cli(d, "agent", "create", "writer", "--level", "L1", "--zone", "federated") for d in mesh.dirs]
    first, every = [], []
    with mesh.running(embedder) as urls, httpx.Client(timeout=30) as client:
        for w in range(WRITES):
            writer = w % n
            headers = {"Authorization": f"Bearer {tokens[writer]}"}
            answer = client.post(
                urls[writer] + "/api/v1/memories",
                json={"content": f"convergence probe {w} from node {writer}", "zone": "federated"},
                headers=headers,
            )
            answer.raise_for_status()
            began, memory_id = time.perf_counter(), answer.json()["id"]
            seen: dict[int, float] = {}
            while len(seen) < n - 1:
                for i in range(n):
                    if i == writer or i in seen:
                        continue
                    got = client.get(
                        urls[i] + f"/api/v1/memories/{memory_id}",
                        headers={"Authorization": f"Bearer {tokens[i]}"},
                    )
                    if got.status_code == 200:
                        seen[i] = time.perf_counter() - began
                if time.perf_counter() - began > 60:
                    raise RuntimeError(f"write {w} did not reach every node")
            first.append(min(seen.values()))
            every.append(max(seen.values()))
            time.sleep(0.2)
    (f50, f95), (e50, e95) = percentiles(first), percentiles(every)
    return f"| {n} | {WRITES} | {f50:.0f} | {f95:.0f} | {e50:.0f} | {e95:.0f} | {max(every) * 1000:.0f} |"


def _search(root: Path, embedder: MiniLMEmbedder) -> str:
    # The searching node takes nothing from its peer (write: false), so the peer's memories are
    # found only by asking it.
    mesh = Mesh(root / "search", 2, options={"write": False})
    corpus = texts(2 * REMOTE_MEMORIES, seed=7)
    writer = _cli(mesh.dirs[1], "agent", "create", "writer", "--level", "L1", "--zone", "federated")
    local_writer = _cli(mesh.dirs[0], "agent", "create", "writer", "--level", "L1", "--zone", "federated")
    reader = _cli(mesh.dirs[0], "user", "create", "reader")
    with mesh.running(embedder) as urls, httpx.Client(timeout=60) as client:
        for start in range(0, REMOTE_MEMORIES, 100):
            for url, token, offset in ((urls[1], writer, 0), (urls[0], local_writer, REMOTE_MEMORIES)):
                items = [
                    {"content": corpus[offset + i], "zone": "federated"}
                    for i in range(start, min(start + 100, REMOTE_MEMORIES))
                ]
                client.post(
                    url + "/api/v1/memories/batch",
                    json={"items": items},
                    headers={"Authorization": f"Bearer {token}"},
                ).raise_for_status()
        rng = random.Random(3)
        queries = [" ".join(corpus[rng.randrange(len(corpus))].split()[:6]) for _ in range(SEARCHES)]
        headers = {"Authorization": f"Bearer {reader}"}
        alone, asked, remote_hits = [], [], 0
        for query in queries:  # alternate, so both see the same noise
            for federated, samples in ((False, alone), (True, asked)):
                began = time.perf_counter()
                answer = client.post(
                    urls[0] + "/api/v1/memories/search",
                    json={"query": query, "limit": 10, "include_federation": federated},
                    headers=headers,
                )
                samples.append(time.perf_counter() - began)
                answer.raise_for_status()
                if federated:
                    remote_hits += sum(h["source"] == mesh.keys[1].id for h in answer.json()["hits"])
    (a50, a95), (f50, f95) = percentiles(alone), percentiles(asked)
    return (
        f"{SEARCHES} searches by a user on one node of two, each node holding {REMOTE_MEMORIES:,} "
        "federated memories of its own (the searching node takes nothing from its peer), run "
        "without and with `include_federation`, alternating.\n\n"
        "| | p50 ms | p95 ms |\n|---|---|---|\n"
        f"| this node only | {a50:.1f} | {a95:.1f} |\n"
        f"| with its peer | {f50:.1f} | {f95:.1f} |\n"
        f"| added | {f50 - a50:.1f} | {f95 - a95:.1f} |\n\n"
        f"Ratio at p50: {f50 / a50:.2f}x. Hits from the peer: {remote_hits / SEARCHES:.1f} of 10 "
        f"per search on average (median search answered in {statistics.median(asked) * 1000:.1f} ms)."
    )


async def run() -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    embedder = MiniLMEmbedder()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rows = [_convergence(root, n, embedder) for n in SIZES]
        search = _search(root, embedder)
    body = "\n\n".join(
        [
            "### Convergence",
            f"{WRITES} federated writes per mesh, on each node in turn, by an L1 agent over REST; "
            "times from the write's answer until the memory is readable on the first other node "
            "and on every other node (polled over REST).\n\n"
            "| nodes | writes | first p50 ms | first p95 ms | all p50 ms | all p95 ms | all max ms |\n"
            "|---|---|---|---|---|---|---|\n" + "\n".join(rows),
            "### Remote search",
            search,
        ]
    )
    write_section("federation_cluster", "Federation between real nodes", body)
