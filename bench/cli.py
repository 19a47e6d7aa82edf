"""How long the ``noosphere`` command takes, and how much memory it holds, against the CLI as it
was before it talked to a running node (commit ``BASELINE``: every command imported everything and
opened the store, migrations and the ONNX embedder included), side by side in one run.

A node serves a data directory with ``MEMORIES`` memories; each command runs ``RUNS`` times, the
two CLIs alternating, as the admin (the default caller) and as an agent with its own token
(``memory list`` as a user's agent runs it). Both trees are byte-compiled first, as an installed
package is. Wall time is the whole process, interpreter start to exit; memory is its peak RSS."""

from __future__ import annotations

import compileall
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from bench.gateway import _port, _start, _stop, _wait
from bench.report import write_section

BASELINE = "5ff2998"  # the last commit whose CLI opened the data directory for every command
RUNS = int(os.environ.get("NOOSPHERE_CLI_RUNS", "15"))
MEMORIES = 2_000
ROOT = Path(__file__).resolve().parents[1]


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Seconds and peak RSS (MiB) of one command, which must succeed."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    error = process.stderr.read().decode() if process.stderr else ""
    if process.stderr:
        process.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{argv} failed: {error[-2000:]}")
    return seconds, usage.ru_maxrss / 1024


def _seed(url: str, token: str) -> str:
    """Memories for the list to page through, and an agent whose token lists them."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
        for start in range(0, MEMORIES, 250):
            items = [
                {"content": f"note {i}: the build on runner {i % 17} took {i % 90} minutes", "zone": "shared"}
                for i in range(start, min(start + 250, MEMORIES))
            ]
            client.post("/api/v1/memories/batch", json={"items": items}).raise_for_status()
        made = client.post("/api/v1/agents", json={"name": "bench-agent", "level": "L2"})
        made.raise_for_status()
        agent_token: str = made.json()["token"]
        return agent_token


def _git(*args: str) -> None:
    subprocess.run(["git", "-C", str(ROOT), *args], check=True, capture_output=True)


def _summary(samples: list[tuple[float, float]]) -> tuple[float, float, float]:
    seconds = np.asarray([s for s, _ in samples])
    return float(np.median(seconds)), float(np.percentile(seconds, 90)), max(m for _, m in samples)


async def run() -> None:
    work = Path(tempfile.mkdtemp(prefix="noosphere-bench-cli-"))
    baseline = work / "baseline"
    _git("worktree", "add", "--detach", str(baseline), BASELINE)
    node = None
    try:
        for tree in (ROOT / "src", baseline / "src"):
            compileall.compile_dir(str(tree), quiet=1)
        data, port = work / "node", _port()
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env |= {"NOOSPHERE_DATA_DIR": str(data)}
        env.pop("NOOSPHERE_TOKEN", None)
        up = [sys.executable, "-m", "noosphere", "up", "--no-local-worker", "--port", str(port)]
        node = _start(up, env | {"PYTHONPATH": str(ROOT / "src")})
        url = f"http://127.0.0.1:{port}"
        _wait(f"{url}/readyz", {}, node)
        admin = (data / "admin-token").read_text().strip()
        agent = _seed(url, admin)
        commands = {
            "noosphere --help": ["--help"],
            "noosphere memory list (admin)": ["memory", "list"],
            "noosphere memory list --token AGENT": ["memory", "list", "--token", agent],
            "noosphere memory search (agent)": [
                "memory",
                "search",
                "which runner was slow",
                "--token",
                agent,
            ],
        }
        trees = {"now": ROOT / "src", "before": baseline / "src"}
        samples: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for _ in range(RUNS):
            for label, args in commands.items():
                for which, tree in trees.items():
                    argv = [sys.executable, "-m", "noosphere", *args]
                    sample = _run(argv, env | {"PYTHONPATH": str(tree)})
                    samples.setdefault((label, which), []).append(sample)
        rows = [
            "| command | now: median / p90 | now: peak RSS | before: median / p90 | before: peak RSS "
            "| before / now (median) |",
            "|---|---|---|---|---|---|",
        ]
        for label in commands:
            now_med, now_p90, now_rss = _summary(samples[(label, "now")])
            old_med, old_p90, old_rss = _summary(samples[(label, "before")])
            rows.append(
                f"| `{label}` | {now_med:.3f} s / {now_p90:.3f} s | {now_rss:.0f} MiB "
                f"| {old_med:.3f} s / {old_p90:.3f} s | {old_rss:.0f} MiB | {old_med / now_med:.1f}x |"
            )
        cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
        body = (
            f"A node on a data directory of {MEMORIES:,} memories (SQLite, no local worker); each command "
            f"{RUNS} times, the CLI of this tree (`now`: asks the running node over its API) and that "
            f"of commit `{BASELINE}` (`before`: opened the store, ran migrations and loaded the "
            "embedder for every command) alternating, both byte-compiled. Targets: `--help` ≤ 0.3 s, "
            "a read command against a running node ≤ 0.5 s.\n\n"
            + "\n".join(rows)
            + f"\n\nCPU time of all the commands together: {cpu.ru_utime + cpu.ru_stime:.0f} s."
        )
        write_section("cli", "CLI latency against a running node", body)
    finally:
        if node is not None:
            _stop(node)
        _git("worktree", "remove", "--force", str(baseline))
        shutil.rmtree(work, ignore_errors=True)
