"""Policy decision time: ``decide`` over a realistic rule set (node, level and agent scopes; command
prefixes and path globs) for a mix of calls that end in every branch. Target: p99 ≤ 10 µs.

Also the audit log's append and verify rates on SQLite, for scale, and what the whole gate adds to
a call from outside the node (``Governor.run``: decision, policy entry, tool entry)."""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.report import write_section
from noosphere.auth.principal import Level
from noosphere.governance.policy import Caller, Policy, ToolCall, compile_policy, decide

DECISIONS = 200_000
TOOLS = [
    "Bash",
    "FileEdit",
    "FileRead",
    "memory_add",
    "memory_forget",
    "memory_search",
    "send_message",
    "delegate",
]


def _policy_and_calls() -> tuple[Policy, list[tuple[Caller, ToolCall]]]:
    rng = random.Random(7)
    policy = compile_policy(
        node={
            "deny": ["Bash(rm:*)", "Bash(git push:*)", "Bash(curl:*)", "FileEdit(*.env)", "FileEdit(/etc/*)"],
            "ask": ["memory_forget(*)", "Bash(docker:*)", "FileEdit(*.lock)"],
            "allow": [
                "Bash(git:*)",
                "Bash(ls:*)",
                "Bash(cat:*)",
                "Bash(pytest:*)",
                "FileRead",
                "FileEdit(*.md)",
                "FileEdit(docs/*)",
                "memory_search",
                "memory_get",
            ],
        },
        levels={
            "L3": {"deny": ["Bash", "delegate"], "ask": ["FileEdit(*)"]},
            "L2": {"allow": ["FileEdit(src/*)", "Bash(make:*)"]},
            "L1": {"allow": ["delegate", "send_message"]},
        },
        agents={
            f"agent{i}": {"allow": [f"FileEdit(team{i}/*)"], "deny": [f"Bash(tool{i}:*)"]} for i in range(20)
        },
    )
    subjects = [
        "git status",
        "git push origin main",
        "rm -rf build",
        "make test",
        "docs/guide.md",
        "src/noosphere/node.py",
        "team3/notes.txt",
        ".env",
        "mem_42",
        None,
    ]
    calls = []
    for _ in range(1000):
        caller = Caller(f"agent{rng.randrange(25)}", rng.choice(list(Level)))
        call = ToolCall(
            rng.choice(TOOLS), rng.choice(subjects), impact=rng.random(), writes=rng.random() < 0.6
        )
        calls.append((caller, call))
    return policy, calls


async def run() -> None:
    policy, calls = _policy_and_calls()
    times = np.empty(DECISIONS, dtype=np.int64)
    clock = time.perf_counter_ns
    outcomes: dict[str, int] = {}
    for i in range(DECISIONS):
        caller, call = calls[i % len(calls)]
        start = clock()
        decision = decide(policy, caller, call)
        times[i] = clock() - start
        outcomes[decision.effect.value] = outcomes.get(decision.effect.value, 0) + 1
    overhead = min(clock() - clock() for _ in range(1000))
    us = (times - overhead) / 1000
    p50, p99, p999 = (float(np.percentile(us, q)) for q in (50, 99, 99.9))
    print(f"policy: p50 {p50:.2f} us, p99 {p99:.2f} us, p99.9 {p999:.2f} us; {outcomes}")
    audit = await _audit_rates()
    gate = await _gate_latency()
    rules = len(policy.rules)
    body = (
        f"`decide` over {rules} rules (node, level and 20 agent scopes; command prefixes and path "
        f"globs), {DECISIONS:,} decisions cycling through 1,000 generated calls that end in every "
        f"branch ({', '.join(f'{k} {v:,}' for k, v in sorted(outcomes.items()))}), timed one by one "
        "(timer overhead subtracted).\n\n"
        "| decisions | p50 µs | p99 µs | p99.9 µs | target p99 |\n|---|---|---|---|---|\n"
        f"| {DECISIONS:,} | {p50:.2f} | {p99:.2f} | {p999:.2f} | ≤ 10 µs |\n\n"
        f"Audit log on SQLite, {audit[0]:,} entries: appended one by one at {audit[1]:,.0f} entries/s; "
        f"a head signed in {audit[2]:.1f} ms; the whole log verified (leaves, signature, inclusion "
        f"proofs of 256 entries) in {audit[3]:.0f} ms.\n\n"
        "The gate a call from outside the node passes (MCP, REST, CLI: `Governor.run` around an "
        "action that does nothing, as a user, so what is measured is the decision and its two audit "
        "entries), on SQLite:\n\n"
        "| callers at once | calls | calls/s | p50 ms | p99 ms |\n|---|---|---|---|---|\n"
        + "".join(f"| {c} | {n:,} | {r:,.0f} | {p50:.2f} | {p99:.2f} |\n" for c, n, r, p50, p99 in gate)
    )
    write_section("policy", "Policy decisions and the audit log", body)


async def _gate_latency() -> list[tuple[int, int, float, float, float]]:
    import anyio

    from noosphere.auth.principal import PrincipalKind
    from noosphere.config import load_settings
    from noosphere.node import open_node
    from noosphere.testing import FakeEmbedder

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(None, data_dir=Path(tmp) / "node")
        async with open_node(settings, embedder=FakeEmbedder()) as node:
            bob, _ = await node.auth.create(PrincipalKind.USER, "bob")

            async def nothing() -> None:
                return None

            for callers, total in ((1, 2000), (16, 4000)):
                latencies: list[float] = []

                async def caller(n: int, latencies: list[float] = latencies) -> None:
                    for i in range(n):
                        start = time.perf_counter()
                        await node.governor.run(bob, "memory_search", {"query": f"q{i}"}, nothing)
                        latencies.append(time.perf_counter() - start)

                began = time.perf_counter()
                async with anyio.create_task_group() as group:
                    for _ in range(callers):
                        group.start_soon(caller, total // callers)
                rate = total / (time.perf_counter() - began)
                ms = np.asarray(latencies) * 1000
                p50, p99 = float(np.percentile(ms, 50)), float(np.percentile(ms, 99))
                print(f"gate: {callers} callers, {rate:,.0f} calls/s, p50 {p50:.2f} ms, p99 {p99:.2f} ms")
                out.append((callers, total, rate, p50, p99))
    return out


async def _audit_rates() -> tuple[int, float, float, float]:
    from noosphere.config import load_settings
    from noosphere.governance.audit import verify_log
    from noosphere.node import open_node
    from noosphere.testing import FakeEmbedder

    n = 5000
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(None, data_dir=Path(tmp) / "node")
        async with open_node(settings, embedder=FakeEmbedder()) as node:
            start = time.perf_counter()
            for i in range(n):
                await node.audit.append(
                    "agent:coder", "tool_call", {"tool": "Bash", "subject": f"git log -{i}"}
                )
            append_rate = n / (time.perf_counter() - start)
            start = time.perf_counter()
            await node.audit.sign_head()
            sign_ms = (time.perf_counter() - start) * 1000
            start = time.perf_counter()
            report = verify_log(
                await node.store.audit_entries(), await node.store.tree_heads(), node.key.public
            )
            verify_ms = (time.perf_counter() - start) * 1000
            assert report.ok, report.problems
    return n, append_rate, sign_ms, verify_ms
