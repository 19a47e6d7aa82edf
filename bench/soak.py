"""A sustained mixed soak: a node serving, for ``NOOSPHERE_SOAK_SECONDS`` (300 by default), at once
8 chat clients streaming through a mock upstream with a metered user API key, 2 clients storing and
searching memories as an agent, and 1 client sending and receiving bus messages. It reports each
kind's rate minute by minute (a rate that falls means work piling up), the memory and bus
latencies under chat load against the same clients' latencies for 30 s alone before it, the
node's resident memory at the first minute and at the end, and whether the ledger caught up: usage
rows against the chats answered, read from the database once the node has stopped. The chat
clients run in a process of their own, so that their load on the client side does not count as
the node's memory and bus latency. Then the same load, in alternating slices, against a node that
makes chats take turns while memory and bus calls arrive (the default) and one that does not."""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import httpx
import numpy as np

from bench.gateway import _metered_key, _mock_node_config, _port, _start, _stop, _wait
from bench.report import write_section

SECONDS = float(os.environ.get("NOOSPHERE_SOAK_SECONDS", "300"))
ALONE_SECONDS = 30.0
COMPARE_SLICES, COMPARE_SECONDS = 2, 45.0
CHATS, MEMORY, BUS = 8, 2, 1
ADMIN_TOKEN = "ns_bench"
CHAT = {"model": "mock", "messages": [{"role": "user", "content": "hello"}], "stream": True}


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Tally:
    def __init__(self, started: float) -> None:
        self.started = started
        self.per_minute: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.minute_latency: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))

    def done(self, kind: str, began: float, ok: bool) -> None:
        if not ok:
            self.errors[kind] += 1
            return
        now = time.perf_counter()
        minute = int((now - self.started) // 60)
        self.per_minute[kind][minute] += 1
        self.latency[kind].append(now - began)
        self.minute_latency[kind][minute].append(now - began)


async def _chat(url: str, key: str, tally: Tally, stop: float) -> None:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession(headers=headers) as client:
        while time.perf_counter() < stop:
            began = time.perf_counter()
            try:
                async with client.post(f"{url}/v1/chat/completions", json=CHAT) as response:
                    text = b"".join([part async for part in response.content.iter_any()])
                    ok = response.status == 200 and text.rstrip().endswith(b"data: [DONE]")
            except aiohttp.ClientError:
                ok = False
            tally.done("chat", began, ok)


def _chats(url: str, key: str, seconds: float, out: Path) -> None:
    """The chat clients, in a process of their own; their tally goes to ``out`` as JSON."""

    async def main() -> Tally:
        tally = Tally(time.perf_counter())
        async with anyio.create_task_group() as group:
            for _ in range(CHATS):
                group.start_soon(_chat, url, key, tally, tally.started + seconds)
        return tally

    tally = anyio.run(main)
    chats = {"per_minute": tally.per_minute["chat"], "latency": tally.latency["chat"]}
    out.write_text(json.dumps({**chats, "errors": tally.errors["chat"]}))


async def _call(client: httpx.AsyncClient, method: str, path: str, body: Any = None) -> int:
    """The status of one call; 0 when the connection failed (an error the soak counts, not one
    that ends it)."""
    try:
        answer = await client.request(method, path, json=body)
    except httpx.TransportError:
        return 0
    return answer.status_code


async def _lag(url: str, tally: Tally, stop: float) -> None:
    """How late the node answers its cheapest route, once a second: its event loop's stalls."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        while time.perf_counter() < stop:
            began = time.perf_counter()
            tally.done("healthz", began, await _call(client, "GET", "/healthz") == 200)
            await anyio.sleep(1.0)


async def _memory(url: str, token: str, n: int, tally: Tally, stop: float) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        i = 0
        while time.perf_counter() < stop:
            i += 1
            began = time.perf_counter()
            content = f"client {n} note {i}: the deploy of service {i % 50} moved to rack {i % 7}"
            stored = await _call(client, "POST", "/api/v1/memories", {"content": content, "zone": "shared"})
            tally.done("memory write", began, stored == 201)
            began = time.perf_counter()
            found = await _call(
                client, "POST", "/api/v1/memories/search", {"query": f"service {i % 50} rack"}
            )
            tally.done("memory search", began, found == 200)


async def _bus(url: str, token: str, tally: Tally, stop: float) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        while time.perf_counter() < stop:
            began = time.perf_counter()
            event = {"kind": "EVENT", "recipient": "soaker", "payload": {"n": 1}}
            tally.done("bus send", began, await _call(client, "POST", "/api/v1/bus/messages", event) == 200)
            try:
                got = await client.post("/api/v1/bus/mailboxes/soaker/receive", json={"limit": 10})
                ids = [d["envelope"]["id"] for d in got.json()] if got.status_code == 200 else []
                if ids:
                    await client.post("/api/v1/bus/mailboxes/soaker/ack", json={"ids": ids})
            except httpx.TransportError:
                continue


async def _approvals(url: str, agent: str, admin: str, tally: Tally, stop: float) -> None:
    """An agent asks to forget its own memories (a person must approve), the admin approves, the
    agent's repeated call goes through: one round trip of the human checkpoint per loop."""
    as_agent = {"Authorization": f"Bearer {agent}"}
    as_admin = {"Authorization": f"Bearer {admin}"}
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        i = 0
        while time.perf_counter() < stop:
            i += 1
            began = time.perf_counter()
            try:
                await _approve_once(client, i, as_agent, as_admin, tally, began)
            except httpx.TransportError:
                tally.done("approval", began, False)


async def _approve_once(
    client: httpx.AsyncClient,
    i: int,
    as_agent: dict[str, str],
    as_admin: dict[str, str],
    tally: Tally,
    began: float,
) -> None:
    mine = await client.post("/api/v1/memories", json={"content": f"scratch {i}"}, headers=as_agent)
    if mine.status_code != 201:
        tally.done("approval", began, False)
        return
    path = f"/api/v1/memories/{mine.json()['id']}"
    asked = await client.delete(path, headers=as_agent)
    approval = asked.json().get("error", {}).get("approval_id") if asked.status_code == 403 else None
    if approval is None:
        tally.done("approval", began, False)
        return
    decided = await client.post(f"/api/v1/approvals/{approval}/approve", json={}, headers=as_admin)
    again = await client.delete(path, headers=as_agent)
    tally.done("approval", began, decided.status_code == 200 and again.status_code == 204)


async def _mixed(url: str, key: str, agent: str, seconds: float, out: Path, during: Any = None) -> Tally:
    """Chats (in their own process), memory and bus clients at once for ``seconds``."""
    chatter = multiprocessing.get_context("spawn").Process(target=_chats, args=(url, key, seconds, out))
    chatter.start()
    tally = Tally(time.perf_counter())
    stop = tally.started + seconds
    async with anyio.create_task_group() as group:
        if during is not None:
            group.start_soon(during)
        for n in range(MEMORY):
            group.start_soon(_memory, url, agent, n, tally, stop)
        group.start_soon(_bus, url, agent, tally, stop)
        group.start_soon(_approvals, url, agent, ADMIN_TOKEN, tally, stop)
        group.start_soon(_lag, url, tally, stop)
    await anyio.to_thread.run_sync(chatter.join)
    chats = json.loads(await anyio.Path(out).read_text())
    tally.per_minute["chat"] = defaultdict(int, {int(m): n for m, n in chats["per_minute"].items()})
    tally.latency["chat"] = chats["latency"]
    tally.errors["chat"] = chats["errors"]
    return tally


def _logged_node(config: Path, tmp: Path, name: str, port: int, env: dict[str, str]) -> Any:
    """``noosphere up`` with its log in ``tmp/<name>.log``, read for failures afterwards."""
    up = ["noosphere", "up", "--config", str(config), "--data-dir", str(tmp / name), "--port", str(port)]
    with (tmp / f"{name}.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", *up],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )


async def _node(tmp: Path, name: str, mock_port: int, streams: int | None) -> tuple[Any, str, str, str]:
    """A node serving the mock: (process, url, metered key, agent token)."""
    port = _port()
    config = _mock_node_config(tmp / f"{name}.yaml", mock_port, 100)
    if streams is not None:
        config.write_text(
            config.read_text().replace("pool:\n", f"pool:\n  streams_during_calls: {streams}\n")
        )
    env = {**os.environ, "NOOSPHERE_ADMIN_TOKEN": ADMIN_TOKEN}
    key = _metered_key(config, tmp / name, env)
    node = _logged_node(config, tmp, name, port, env)
    url = f"http://127.0.0.1:{port}"
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    _wait(f"{url}/v1/models", admin, node)
    async with httpx.AsyncClient(base_url=url, headers=admin) as http:
        agent = (await http.post("/api/v1/agents", json={"name": "soaker"})).json()["token"]
    return node, url, key, agent


async def _with_and_without(tmp: Path, mock_port: int) -> list[str]:
    """The same mixed load, alternating between a node that makes chats take turns (the default)
    and one that does not (``streams_during_calls: 0``), ``COMPARE_SLICES`` slices each."""
    nodes = {"default (limit down to 4)": None, "off (`streams_during_calls: 0`)": 0}
    started = {
        label: await _node(tmp, f"cmp{i}", mock_port, streams)
        for i, (label, streams) in enumerate(nodes.items())
    }
    results: dict[str, list[Tally]] = defaultdict(list)
    try:
        for n in range(COMPARE_SLICES):
            order = list(started) if n % 2 == 0 else list(reversed(started))
            for label in order:
                _, url, key, agent = started[label]
                results[label].append(await _mixed(url, key, agent, COMPARE_SECONDS, tmp / "cmp.json"))
    finally:
        for node, *_ in started.values():
            _stop(node)
    kinds = ["memory write", "memory search", "bus send"]
    rows = [
        "| chats take turns | chats/s | " + " | ".join(f"{k} p50 ms" for k in kinds) + " |",
        "|---|---|" + "---|" * len(kinds),
    ]
    for label, tallies in results.items():
        chats = sum(sum(t.per_minute["chat"].values()) for t in tallies) / (COMPARE_SECONDS * len(tallies))
        cells = [
            f"{np.percentile(np.asarray([x for t in tallies for x in t.latency[k]]) * 1000, 50):.1f}"
            for k in kinds
        ]
        rows.append(f"| {label} | {chats:,.0f} | " + " | ".join(cells) + " |")
    return rows


async def run() -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        mock_port = _port()
        mock = _start([sys.executable, "-m", "bench.mock_openai", str(mock_port)])
        try:
            node, url, key, agent = await _node(tmp, "node", mock_port, None)
            try:
                alone = Tally(time.perf_counter())
                async with anyio.create_task_group() as group:
                    for n in range(MEMORY):
                        group.start_soon(_memory, url, agent, n, alone, alone.started + ALONE_SECONDS)
                    group.start_soon(_bus, url, agent, alone, alone.started + ALONE_SECONDS)
                rss: list[float] = []

                async def watch() -> None:
                    await anyio.sleep(min(60.0, SECONDS / 5))
                    rss.append(_rss_mib(node.pid))

                started = time.perf_counter()
                tally = await _mixed(url, key, agent, SECONDS, tmp / "chats.json", watch)
                rss.append(_rss_mib(node.pid))
                elapsed = time.perf_counter() - started
            finally:
                _stop(node)
            compare = await _with_and_without(tmp, mock_port)
        finally:
            _stop(mock)
        with sqlite3.connect(tmp / "node" / "noosphere.db") as db:
            (recorded,) = db.execute("SELECT count(*) FROM usage_requests WHERE status = 'ok'").fetchone()
        tmp_log = (tmp / "node.log").read_text(errors="replace")
    answered = sum(tally.per_minute["chat"].values())
    minutes = int(elapsed // 60) or 1
    kinds = ["chat", "memory write", "memory search", "bus send", "approval", "healthz"]
    shown = minutes if minutes <= 6 else 6  # the first three and the last three minutes of a long run
    picked = list(range(minutes)) if minutes <= 6 else [0, 1, 2, minutes - 3, minutes - 2, minutes - 1]
    rows = [
        "| kind | "
        + " | ".join(f"min {m + 1} /s" for m in picked)
        + " | p50 ms | p99 ms | p99 first → last min | errors (rate) |"
    ]
    rows.append("|---|" + "---|" * (shown + 4))
    for kind in kinds:
        rates = [tally.per_minute[kind].get(m, 0) / 60 for m in picked]
        lat = np.asarray(tally.latency[kind] or [0.0]) * 1000
        first = np.asarray(tally.minute_latency[kind].get(0) or [0.0]) * 1000
        last = np.asarray(tally.minute_latency[kind].get(minutes - 1) or [0.0]) * 1000
        done = len(tally.latency[kind]) + tally.errors[kind]
        rate = tally.errors[kind] / done * 100 if done else 0.0
        rows.append(
            f"| {kind} | "
            + " | ".join(f"{r:,.1f}" for r in rates)
            + f" | {np.percentile(lat, 50):.1f} | {np.percentile(lat, 99):.1f} "
            + (  # the chat clients' per-minute latencies stay in their own process
                f"| {np.percentile(first, 99):.1f} → {np.percentile(last, 99):.1f} "
                if tally.minute_latency[kind]
                else "| — "
            )
            + f"| {tally.errors[kind]} ({rate:.2f} %) |"
        )
    growth = (rss[-1] - rss[0]) / rss[0] * 100 if len(rss) == 2 and rss[0] else float("nan")
    logged = (tmp_log or "").splitlines()
    failures = [line for line in logged if "Traceback" in line or line.startswith(("ERROR", "CRITICAL"))]
    stalls = np.asarray(tally.latency["healthz"] or [0.0])
    compared = [
        "| kind | alone p50 ms | under chat load p50 ms | ratio | alone p99 ms | under chat load p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    for kind in kinds[1:4]:
        before = np.asarray(alone.latency[kind] or [0.0]) * 1000
        during = np.asarray(tally.latency[kind] or [0.0]) * 1000
        p50a, p50b = np.percentile(before, 50), np.percentile(during, 50)
        compared.append(
            f"| {kind} | {p50a:.1f} | {p50b:.1f} | {p50b / p50a:.1f}x | {np.percentile(before, 99):.1f} | "
            f"{np.percentile(during, 99):.1f} |"
        )
    write_section(
        "soak",
        "Sustained mixed load",
        f"{elapsed:.0f} s against one node (SQLite) on loopback: {CHATS} clients streaming chats through "
        "a mock upstream with a metered user API key (limits and a budget), "
        f"{MEMORY} clients storing and searching memories as an agent, {BUS} client sending, "
        "receiving and acknowledging bus messages, and one agent asking to forget its own memories while "
        "the admin approves each request (`approval`: the whole round trip), all at once; the chat "
        "clients in a process of their own. `make soak` runs it for 30 minutes.\n\n"
        + "\n".join(rows)
        + f"\n\nThe memory and bus clients alone for {ALONE_SECONDS:.0f} s first, then under the chat "
        "load:\n\n"
        + "\n".join(compared)
        + f"\n\nChats answered {answered:,}; usage rows in the ledger after the node stopped "
        f"{recorded:,} ({'caught up' if recorded >= answered else 'behind'}: written within "
        "`pool.ledger_delay_ms` of each answer, and on shutdown). "
        f"Node RSS {rss[0]:.0f} MiB at the first minute, {rss[-1]:.0f} MiB at the "
        f"end ({growth:+.1f} %; target < 10 %). The node's log holds {len(failures)} error lines"
        + (f" (the first: `{failures[0][:160]}`)" if failures else "")
        + "; `GET /healthz` once a second answered in "
        f"{np.percentile(stalls, 50) * 1000:.1f} ms at the median and {stalls.max() * 1000:.0f} ms at the "
        "slowest (how long the node's event loop stalled).\n\n"
        f"The same load against two fresh nodes, {COMPARE_SLICES} slices of {COMPARE_SECONDS:.0f} s each, "
        "alternating: one that makes chats take turns while memory and bus calls arrive and its event loop "
        "runs late (the default, [gateway.md](gateway.md#chats-make-way-for-agents-calls)), one that does "
        "not:\n\n" + "\n".join(compare),
    )
