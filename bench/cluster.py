"""Cluster: what serving one node from several processes costs and gives, on this machine.

1. Added latency of cross-process dispatch. A two-process cluster (``noosphere cluster``'s
   launcher: the embedded PostgreSQL, nats-server); one ``noosphere worker --proxy`` to the fast
   mock OpenAI server, joined to process A. The same streamed requests, with a metered API key
   (rate limits and a budget, so every request passes the shared limits), one at a time, sent to
   A (the worker's own process) and to B (dispatched over NATS to A), alternating slices.
2. Requests/s of a one-process and a two-process cluster, each process serving the mock as its
   upstream, a metered key, 50 concurrent streams spread round-robin over the processes, in
   alternating slices; with the CPU each node process used.

Every server runs in its own process on loopback; one asyncio load generator drives them."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import anyio
import httpx
import numpy as np
import yaml

from bench.gateway import BODY, _cpu_seconds, _port, _start, _stop
from bench.report import write_section
from noosphere.cluster.launcher import Launcher

SLICES = 4
LATENCY_REQUESTS = 150  # per slice and target
THROUGHPUT_STREAMS = 50
THROUGHPUT_SECONDS = 12.0  # per slice
LIMITS = {"rpm": 1_000_000, "tpm": 1_000_000_000, "budget": 1e15, "budget_period": "monthly"}


@dataclass
class Run:
    latencies: list[float]
    seconds: float
    errors: int
    cpu: list[float]  # seconds of CPU per node process during the run
    machine: float = 0.0  # seconds of CPU the whole machine spent (every core) during the run

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds

    def pct(self, q: float) -> float:
        return float(np.percentile(np.asarray(self.latencies) * 1000, q))


def _cluster(root: Path, processes: int, config: Mapping[str, object]) -> Launcher:
    root.mkdir(parents=True)
    base = root / "base.yaml"
    base.write_text(yaml.safe_dump(dict(config)))
    launcher = Launcher(root / "node", processes, _port(), base, local_workers=0)
    launcher.start()
    return launcher


def _admin(launcher: Launcher) -> httpx.Client:
    token = (launcher.directory / "admin-token").read_text().strip()
    return httpx.Client(base_url=launcher.members[0].url, headers={"Authorization": f"Bearer {token}"})


def _metered_key(launcher: Launcher) -> str:
    with _admin(launcher) as http:
        http.post("/api/v1/users", json={"name": "bench"}).raise_for_status()
        made = http.post("/api/v1/keys", json={"user": "bench", "name": "bench", **LIMITS})
        made.raise_for_status()
        key: str = made.json()["key"]
        return key


def _models(url: str, key: str) -> dict[str, int]:
    answer = httpx.get(url + "/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=5)
    return {m["id"]: m.get("workers", 0) for m in answer.json().get("data", [])}


def _until(condition: Callable[[], object], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


async def _load(urls: list[str], key: str, streams: int, total: int, seconds: float, pids: list[int]) -> Run:
    """``streams`` concurrent streamed requests, the i-th sent to ``urls[i % len(urls)]``."""
    latencies: list[float] = []
    errors = issued = 0
    body = json.dumps(BODY).encode()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=streams * 2)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=60), headers=headers
    ) as client:

        async def one(n: int) -> None:
            nonlocal errors
            started = time.perf_counter()
            try:
                async with client.post(urls[n % len(urls)] + "/v1/chat/completions", data=body) as answer:
                    async for _ in answer.content.iter_any():
                        pass
                    ok = answer.status == 200
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            if ok:
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1

        for n in range(10 * len(urls)):  # warm connections and code paths
            await one(n)
        latencies.clear()
        errors = 0
        stop_at = time.monotonic() + seconds

        async def worker() -> None:
            nonlocal issued
            while issued < total and time.monotonic() < stop_at:
                issued += 1
                await one(issued)

        cpu = [_cpu_seconds(pid) for pid in pids]
        busy = _machine_busy()
        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            for _ in range(streams):
                group.start_soon(worker)
        elapsed = time.perf_counter() - started
        used = [_cpu_seconds(pid) - before for pid, before in zip(pids, cpu, strict=True)]
        machine = _machine_busy() - busy
    return Run(latencies, elapsed, errors, used, machine)


def _machine_busy() -> float:
    """CPU seconds every core of the machine has spent busy (not idle or waiting) since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _pids(launcher: Launcher) -> list[int]:
    return [m.process.pid for m in launcher.members if m.process is not None]


async def _latency(tmp: Path, mock: str) -> tuple[Run, Run]:
    config = {"pool": {"checker": False, "local_worker": False}, "scheduler": {"enabled": False}}
    launcher = _cluster(tmp / "latency", 2, config)
    worker = None
    try:
        key = _metered_key(launcher)
        with _admin(launcher) as http:
            made = http.post("/api/v1/workers/bench/token", json={"models": ["mock"]})
            made.raise_for_status()
            token = made.json()["token"]
        a, b = (m.url for m in launcher.members)
        worker = _start(
            [
                sys.executable,
                "-m",
                "noosphere",
                "worker",
                "--join",
                a.replace("http", "ws", 1),
                "--token",
                token,
                "--proxy",
                mock,
                "--proxy-model",
                "mock",
                "--capacity",
                "4",
                "--name",
                "bench",
            ]
        )
        _until(lambda: _models(b, key).get("mock"), "the worker's model on process B")
        local: list[Run] = []
        remote: list[Run] = []
        pids = _pids(launcher)
        for n in range(SLICES):
            for target, runs in ((a, local), (b, remote))[:: 1 if n % 2 == 0 else -1]:
                runs.append(await _load([target], key, 1, LATENCY_REQUESTS, 60.0, pids))
        return _merge(local), _merge(remote)
    finally:
        if worker is not None:
            _stop(worker)
        launcher.stop()


async def _throughput(tmp: Path, mock: str) -> tuple[Run, Run]:
    upstream = {"name": "mock", "base_url": mock, "models": ["mock"], "max_concurrency": 1000}
    config = {
        "pool": {
            "checker": False,
            "local_worker": False,
            "spill_after_seconds": 0,
            "max_queued": 100000,
            "upstreams": [upstream],
        },
        "scheduler": {"enabled": False},
    }
    one = _cluster(tmp / "one", 1, config)
    two = _cluster(tmp / "two", 2, config)
    try:
        keys = {id(one): _metered_key(one), id(two): _metered_key(two)}
        single: list[Run] = []
        double: list[Run] = []
        for n in range(SLICES):
            for launcher, runs in ((one, single), (two, double))[:: 1 if n % 2 == 0 else -1]:
                urls = [m.url for m in launcher.members]
                key = keys[id(launcher)]
                runs.append(
                    await _load(urls, key, THROUGHPUT_STREAMS, 10**9, THROUGHPUT_SECONDS, _pids(launcher))
                )
        return _merge(single), _merge(double)
    finally:
        one.stop()
        two.stop()


def _merge(runs: list[Run]) -> Run:
    return Run(
        [x for r in runs for x in r.latencies],
        sum(r.seconds for r in runs),
        sum(r.errors for r in runs),
        [sum(c) for c in zip(*(r.cpu for r in runs), strict=True)],
        sum(r.machine for r in runs),
    )


async def run() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        mock_port = _port()
        mock = _start([sys.executable, "-m", "bench.mock_openai", str(mock_port)])
        mock_url = f"http://127.0.0.1:{mock_port}/v1"
        try:
            local, remote = await _latency(Path(tmp), mock_url)
            single, double = await _throughput(Path(tmp), mock_url)
        finally:
            _stop(mock)
    added50, added99 = remote.pct(50) - local.pct(50), remote.pct(99) - local.pct(99)
    cores_one = sum(single.cpu) / single.seconds
    cores_two = [c / double.seconds for c in double.cpu]

    def row(label: str, r: Run, cores: str) -> str:
        machine = f"{r.machine / r.seconds:.2f} of {os.cpu_count()}"
        latency = f"{r.pct(50):.1f} | {r.pct(99):.1f}"
        return f"| {label} | {r.rps:,.0f} | {latency} | {r.errors} | {cores} | {machine} |"

    def hop(label: str, r: Run) -> str:
        return f"| {label} | {len(r.latencies)} | {r.pct(50):.1f} | {r.pct(99):.1f} | {r.errors} |"

    body = f"""
Two node processes (`noosphere cluster`'s launcher: embedded PostgreSQL, nats-server) and the fast
mock OpenAI server (20 tokens per answer) on loopback; every request streamed with a metered API
key (rate limits and a budget: each admission is a transaction on the shared PostgreSQL). The
machine's {os.cpu_count()} cores are shared by everything: load generator, mock, engines and nodes.

**Added latency of cross-process dispatch** — one `noosphere worker --proxy` to the mock, joined
to process A; {SLICES} alternating slices of {LATENCY_REQUESTS} requests, one at a time:

| sent to | requests | p50 ms | p99 ms | errors |
|---|---:|---:|---:|---:|
{hop("A (the worker's own process)", local)}
{hop("B (dispatched to A over NATS)", remote)}
| added by the hop | | {added50:+.1f} | {added99:+.1f} | |

**Requests/s, one process vs two** — each process serves the mock as its own upstream;
{THROUGHPUT_STREAMS} concurrent streams spread round-robin over the processes; {SLICES}
alternating slices of {THROUGHPUT_SECONDS:g} s:

| cluster | requests/s | p50 ms | p99 ms | errors | cores the node processes used | cores busy |
|---|---:|---:|---:|---:|---|---|
{row("1 process", single, f"{cores_one:.2f}")}
{row("2 processes", double, " + ".join(f"{c:.2f}" for c in cores_two))}
| ratio | {double.rps / single.rps:.2f} times | | | | | |

The node processes get what the load generator, the mock, PostgreSQL and NATS leave of the
machine's cores: when the machine is busy all through both runs, a second process cannot add
throughput here, and the ratio says what it costs instead. On machines with cores to spare for
it, each process adds its own share.
"""
    write_section("cluster", "Cluster: cross-process dispatch and scaling with processes", body)
