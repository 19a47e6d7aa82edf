"""Gateway overhead: the same fast mock OpenAI-compatible backend called directly, through a
noosphere node (as a configured upstream) with a metered user API key — rate limits and a budget —
on an empty ledger and on one of 1,000,000 entries, with the admin token as a reference, and
through LiteLLM's proxy, in the same run, at 1, 50 and 200 concurrent streams. Also SmolLM2
tokens/s through the gateway versus llama.cpp directly.

Every server runs in its own process on loopback; one asyncio load generator (aiohttp, whose C
HTTP parser leaves the servers most of the two cores) drives all targets the same way, reading
every response to its end."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import anyio
import httpx
import numpy as np

from bench.report import write_section

ROOT = Path(__file__).resolve().parents[1]
LITELLM = ROOT / ".venv-litellm" / "bin" / "litellm"
LEVELS = ((1, 1000), (50, 6000), (200, 6000))  # (concurrent streams, requests)
SLICES = 4  # each target runs this many times per level, alternating the order
MAX_SECONDS = 15.0  # per slice (LiteLLM reaches it)
FLOOR = "minimal Python proxy (floor)"
STRICT = "noosphere key, written before the answer"
BODY = {"model": "mock", "messages": [{"role": "user", "content": "hello"}], "stream": True}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait(url: str, headers: dict[str, str], process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        try:
            if httpx.get(url, headers=headers, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


@dataclass
class Result:
    target: str
    streams: int
    requests: int
    seconds: float
    latencies: list[float]
    errors: int
    cpu_seconds: float = 0.0  # the server process's CPU time during the load

    @property
    def cpu_ms(self) -> float:
        """The server's CPU time per request: what it costs, whatever else the machine does."""
        return self.cpu_seconds / max(self.requests + self.errors, 1) * 1000

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float) -> float:
        return float(np.percentile(np.asarray(self.latencies) * 1000, q))


def _cpu_seconds(pid: int | None) -> float:
    """User and system CPU time of a process and its threads so far (0 without one)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _load(
    target: str, url: str, headers: dict[str, str], streams: int, total: int, pid: int | None = None
) -> Result:
    latencies: list[float] = []
    errors = 0
    issued = 0
    stop_at = time.monotonic() + MAX_SECONDS
    connector = aiohttp.TCPConnector(limit=streams)
    timeout = aiohttp.ClientTimeout(total=60)
    body = json.dumps(BODY).encode()
    headers = {**headers, "Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as client:

        async def one() -> None:
            nonlocal errors
            t = time.perf_counter()
            try:
                async with client.post(url, data=body) as response:
                    async for _ in response.content.iter_any():
                        pass
                    ok = response.status == 200
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            if ok:
                latencies.append(time.perf_counter() - t)
            else:
                errors += 1

        async def worker() -> None:
            nonlocal issued
            while issued < total and time.monotonic() < stop_at:
                issued += 1
                await one()

        for _ in range(min(20, total)):  # warm connections and code paths
            await one()
        latencies.clear()
        errors = 0
        started, cpu = time.perf_counter(), _cpu_seconds(pid)
        async with anyio.create_task_group() as group:
            for _ in range(streams):
                group.start_soon(worker)
        seconds, cpu = time.perf_counter() - started, _cpu_seconds(pid) - cpu
    return Result(target, streams, len(latencies), seconds, latencies, errors, cpu)


def _start(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


LEDGER_ENTRIES = 1_000_000


def _metered_key(config: Path, data_dir: Path, env: dict[str, str]) -> str:
    """A user and an API key with limits that the load never reaches but admission checks."""
    base = [sys.executable, "-m", "noosphere"]
    where = ["--config", str(config), "--data-dir", str(data_dir)]
    subprocess.run([*base, "user", "create", "bench", *where], env=env, check=True, capture_output=True)
    limits = ["--rpm", "1000000", "--tpm", "1000000000", "--budget", "1e15", "--budget-period", "monthly"]
    made = subprocess.run(
        [*base, "key", "create", "bench", *limits, "--json", *where],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    key: str = json.loads(made.stdout)["key"]
    return key


async def _fill_ledger(config: Path, data_dir: Path, entries: int) -> None:
    """Write ``entries`` ledger entries (half of them the bench key's) through the store, as the
    key's past usage over the last two months."""
    from datetime import UTC, datetime, timedelta

    from noosphere.auth.principal import key_account
    from noosphere.config import load_settings
    from noosphere.store import create_store
    from noosphere.store.contract import UsageRecord

    settings = load_settings(config, data_dir=data_dir)
    store = create_store(settings)
    await store.open()
    try:
        (record,) = [k for k in await store.api_keys() if k.user_id == "user:bench"]
        account = key_account(record.id)
        start = datetime.now(UTC) - timedelta(days=60)
        for first in range(0, entries // 2, 5000):
            batch = []
            for n in range(first, min(first + 5000, entries // 2)):
                at = start + timedelta(seconds=n * 10)
                usage = UsageRecord(
                    id=f"req_fill_{n}",
                    at=at,
                    principal="user:bench",
                    key_id=record.id,
                    model="mock",
                    worker="upstream:mock",
                    prompt_tokens=6,
                    completion_tokens=20,
                    reported_prompt=6,
                    reported_completion=20,
                    credits=46.0,
                    status="ok",
                )
                batch.append((usage, [(account, -46.0), ("upstream:mock", 46.0)]))
            await store.record_usage(batch)
    finally:
        await store.close()


def _start_node(config: Path, data_dir: Path, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    up = ["noosphere", "up", "--config", str(config), "--data-dir", str(data_dir), "--port", str(port)]
    return _start([sys.executable, "-m", *up], env)


def _mock_node_config(path: Path, mock_port: int, concurrency: int, ledger_delay_ms: int = 25) -> Path:
    """A node config serving the mock as its only model (``mock``), with no local worker."""
    path.write_text(
        "pool:\n  local_worker: false\n  checker: false\n  spill_after_seconds: 0\n  max_queued: 100000\n"
        f"  ledger_delay_ms: {ledger_delay_ms}\n"
        f"  upstreams:\n    - {{name: mock, base_url: 'http://127.0.0.1:{mock_port}/v1', models: [mock], "
        f"max_concurrency: {concurrency}}}\n"
    )
    return path


async def _overhead(tmp: Path) -> list[Result]:
    mock_port, node_port, full_port, litellm_port, floor_port = _port(), _port(), _port(), _port(), _port()
    strict_port = _port()
    processes = [_start([sys.executable, "-m", "bench.mock_openai", str(mock_port)])]
    mock_chat = f"http://127.0.0.1:{mock_port}/v1/chat/completions"
    floor = _start([sys.executable, "-m", "bench.min_proxy", mock_chat, str(floor_port)])
    config = _mock_node_config(tmp / "node.yaml", mock_port, 1000)
    env = {**os.environ, "NOOSPHERE_ADMIN_TOKEN": "ns_bench"}
    strict_config = _mock_node_config(tmp / "strict.yaml", mock_port, 1000, ledger_delay_ms=0)
    key = _metered_key(config, tmp / "node", env)
    full_key = _metered_key(config, tmp / "full", env)
    strict_key = _metered_key(strict_config, tmp / "strict", env)
    filled = time.perf_counter()
    await _fill_ledger(config, tmp / "full", LEDGER_ENTRIES)
    print(f"ledger of {LEDGER_ENTRIES:,} entries written in {time.perf_counter() - filled:.0f} s")
    processes.append(_start_node(config, tmp / "node", node_port, env))
    processes.append(_start_node(config, tmp / "full", full_port, env))
    processes.append(_start_node(strict_config, tmp / "strict", strict_port, env))
    node, full = f"http://127.0.0.1:{node_port}/v1", f"http://127.0.0.1:{full_port}/v1"
    strict = f"http://127.0.0.1:{strict_port}/v1"
    targets = [
        ("direct", f"http://127.0.0.1:{mock_port}/v1", {}),
        (FLOOR, f"http://127.0.0.1:{floor_port}/v1", {}),
        ("noosphere admin", node, {"Authorization": "Bearer ns_bench"}),
        ("noosphere key, empty ledger", node, {"Authorization": f"Bearer {key}"}),
        ("noosphere key, 1M-entry ledger", full, {"Authorization": f"Bearer {full_key}"}),
        (STRICT, strict, {"Authorization": f"Bearer {strict_key}"}),
    ]
    if LITELLM.exists():
        lconfig = tmp / "litellm.yaml"
        lconfig.write_text(
            "model_list:\n  - model_name: mock\n    litellm_params:\n      model: openai/mock\n"
            f"      api_base: http://127.0.0.1:{mock_port}/v1\n      api_key: sk-none\n"
            "general_settings:\n  master_key: sk-bench\n"
        )
        processes.append(
            _start(
                [str(LITELLM), "--config", str(lconfig), "--port", str(litellm_port), "--num_workers", "1"]
            )
        )
        targets.append(
            ("litellm", f"http://127.0.0.1:{litellm_port}/v1", {"Authorization": "Bearer sk-bench"})
        )
    else:
        print("LiteLLM not installed (make bench-deps): its rows are skipped")
    waits = [targets[0], *targets[3:]]  # the admin row shares its node with the first key row
    served_by = [processes[0], floor, processes[1], *processes[1:]]  # in the order of targets
    pids = {name: process.pid for (name, _, _), process in zip(targets, served_by, strict=True)}
    try:
        for (_, url, headers), process in zip(waits, processes, strict=True):
            _wait(url + "/models", headers, process)
        _wait_port(floor_port, floor)
        results = []
        for streams, total in LEVELS:
            # Each target SLICES times, in order and then in reverse (A B C C B A A B C ...), a
            # share of the requests each time: a machine that gets busier or quieter during the run
            # favours no target, and one noisy moment weighs a quarter of a row.
            parts: dict[str, list[Result]] = {}
            for n in range(SLICES):
                for name, url, headers in targets if n % 2 == 0 else list(reversed(targets)):
                    part = await _load(
                        name, url + "/chat/completions", headers, streams, total // SLICES, pids.get(name)
                    )
                    parts.setdefault(name, []).append(part)
            level = []
            for name, done in parts.items():
                result = Result(
                    name,
                    streams,
                    sum(p.requests for p in done),
                    sum(p.seconds for p in done),
                    [x for p in done for x in p.latencies],
                    sum(p.errors for p in done),
                    sum(p.cpu_seconds for p in done),
                )
                print(
                    f"{name:32s} {streams:4d} streams: {result.rps:8.1f} req/s  "
                    f"p50 {result.pct(50):7.2f} ms  p99 {result.pct(99):7.2f} ms  "
                    f"cpu {result.cpu_ms:.3f} ms/req  errors {result.errors}"
                )
                level.append(result)
            order = [name for name, _, _ in targets]
            results.extend(sorted(level, key=lambda r: order.index(r.target)))
        return results
    finally:
        for process in [*processes, floor]:
            _stop(process)


def _wait_port(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Until something listens on ``port`` (the minimal proxy answers only chat completions)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


async def _smollm2_tokens_per_second(tmp: Path) -> tuple[float, float]:
    """Median tokens/s of llama.cpp in this process and through a node's local worker, measured
    alternately (direct, gateway, direct, ...) so that a machine that changes speed during the run
    favours neither."""
    from llama_cpp import Llama

    from noosphere.pool.backends.llama import bundled_smollm2

    messages = [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]
    port = _port()
    env = {**os.environ, "NOOSPHERE_ADMIN_TOKEN": "ns_bench"}
    config = tmp / "smol.yaml"
    config.write_text("pool:\n  checker: false\n")
    node = _start_node(config, tmp / "smol", port, env)
    llm = Llama(model_path=str(bundled_smollm2()), n_ctx=2048, verbose=False)
    headers = {"Authorization": "Bearer ns_bench"}
    body = {
        "model": "smollm2-135m-instruct",
        "messages": messages,
        "max_tokens": 200,
        "temperature": 0,
        "stream": True,
    }
    direct, gateway = [], []
    try:
        _wait(f"http://127.0.0.1:{port}/v1/models", headers, node)
        async with httpx.AsyncClient(timeout=120, headers=headers) as client:
            for _ in range(3):
                t, n = time.perf_counter(), 0
                for part in llm.create_chat_completion(
                    messages=messages, max_tokens=200, temperature=0, stream=True
                ):  # type: ignore[arg-type, union-attr]
                    n += bool(part["choices"][0]["delta"].get("content"))  # type: ignore[index, union-attr]
                direct.append(n / (time.perf_counter() - t))
                t, n = time.perf_counter(), 0
                async with client.stream(
                    "POST", f"http://127.0.0.1:{port}/v1/chat/completions", json=body
                ) as r:
                    async for line in r.aiter_lines():
                        n += (
                            line.startswith("data: {")
                            and '"content":"' in line
                            and '"content":""' not in line
                        )
                gateway.append(n / (time.perf_counter() - t))
    finally:
        llm.close()
        _stop(node)
    return float(np.median(direct)), float(np.median(gateway))


async def run() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        results = await _overhead(Path(tmp))
        direct_tps, gateway_tps = await _smollm2_tokens_per_second(Path(tmp))
    rows = []
    by = {(r.target, r.streams): r for r in results}
    for r in results:
        base = by[("direct", r.streams)]
        added = (
            "—"
            if r.target == "direct"
            else f"{r.pct(50) - base.pct(50):+.2f} / {r.pct(99) - base.pct(99):+.2f}"
        )
        rows.append(
            f"| {r.target} | {r.streams} | {r.requests} | {r.rps:,.0f} | {r.pct(50):.2f} | {r.pct(99):.2f} | "
            f"{added} | {r.cpu_ms:.2f} | {r.errors} |"
        )
    ratios = []
    for streams, _ in LEVELS:
        floor_p50 = by[(FLOOR, streams)].pct(50)
        key_p50 = by[("noosphere key, empty ledger", streams)].pct(50)
        key_cpu = by[("noosphere key, empty ledger", streams)].cpu_ms
        ratios.append(
            f"{streams} stream{'s' * (streams > 1)}: a metered key adds {key_p50 - floor_p50:+.2f} ms p50 "
            f"over the minimal proxy and costs its node {key_cpu / by[(FLOOR, streams)].cpu_ms:.2f}x the "
            "minimal proxy's CPU per request"
        )
        admin = by[("noosphere admin", streams)]
        for name in ("noosphere key, empty ledger", "noosphere key, 1M-entry ledger", STRICT):
            ratios.append(
                f"{streams} stream{'s' * (streams > 1)}, {name.removeprefix('noosphere ')}: "
                f"{by[(name, streams)].rps / admin.rps:.2f}x admin's requests/s"
            )
        if ("litellm", streams) in by:
            ratio = by[("noosphere key, empty ledger", streams)].rps / by[("litellm", streams)].rps
            ratios.append(f"{streams} streams: metered noosphere {ratio:.1f}x LiteLLM's requests/s")
    body = (
        "A mock OpenAI-compatible backend (`bench/mock_openai.py`, 20 streamed tokens per answer) "
        "called directly and through noosphere nodes (the mock as a configured upstream): with a "
        "metered user API key (rate limits and a monthly budget checked on every request, a "
        "reservation at admission, the ledger entries written within 25 ms of the answer, the default "
        "`pool.ledger_delay_ms`) on a node with an "
        f"empty ledger and on one with {LEDGER_ENTRIES:,} ledger entries, and on a node that writes them "
        "before the answer completes (`ledger_delay_ms: 0`); with the admin token "
        "(no limits) as a reference; and through LiteLLM's proxy (`litellm[proxy]`, 1 worker) when "
        "installed (`make bench-deps`); and, as the floor, through the least a Python streaming proxy "
        "can do (`bench/min_proxy.py`: uvicorn and aiohttp, each chunk parsed and re-encoded, no "
        "authentication, limits or accounting). Each server in its own process on loopback, driven by one "
        "asyncio load generator (aiohttp) in the same run, each target four times per level (in order, "
        "then in reverse, and again, a quarter of the requests each time). Latency is to the last byte "
        "of the stream. *Server CPU* "
        "is the CPU time of the process answering (the mock for *direct*) per request during the load: "
        "what a request costs that server, which the machine's other load does not change. "
        "Targets on this machine: metered within 10 % of admin's requests/s at 50 streams at both "
        "ledger sizes; added p50 ≤ 1 ms at 1 stream with a key.\n\n"
        "| target | streams | requests | req/s | p50 ms | p99 ms | added p50 / p99 ms "
        "| server CPU ms/req | errors |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n\n"
        + ("; ".join(ratios) + ".\n\n" if ratios else "")
        + "SmolLM2-135M-Instruct, 200 tokens at temperature 0, median of 3 alternating runs: "
        f"llama.cpp directly "
        f"{direct_tps:.1f} tokens/s, through the gateway (local worker, streamed) {gateway_tps:.1f} tokens/s "
        f"= {100 * gateway_tps / direct_tps:.0f}% (target ≥ 90%)."
    )
    write_section("gateway", "Gateway overhead", body)
