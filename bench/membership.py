"""Membership: noosphere's own failure detection (signed HTTP heartbeats between declared peers,
``federation/membership.py``) against kinship (SWIM with Lifeguard, in Rust, over UDP gossip), side
by side in one run: three members on loopback, one killed, how long until another suspects it and
declares it dead. kinship runs its LAN preset (a probe every second); noosphere with a heartbeat
every second, and at its default of two. Needs kinship: ``make bench-deps``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.federation_cluster import Mesh, free_port, serve_node
from bench.report import write_section
from noosphere.embeddings.minilm import MiniLMEmbedder

TRIALS = 5
MEMBER = """
import asyncio, sys, kinship
async def main():
    cfg = kinship.Config.lan(bind=sys.argv[1], seeds=[sys.argv[2]], name=sys.argv[3], insecure_plaintext=True)
    async with kinship.Cluster(cfg):
        await asyncio.Event().wait()
asyncio.run(main())
"""


async def _kinship_trial(observer: object, port: int, name: str) -> tuple[float, float]:
    import kinship

    assert isinstance(observer, kinship.Cluster)
    process = await _member(port, name)
    try:
        deadline = time.monotonic() + 30
        while not any(m.name == name and m.state.name == "ALIVE" for m in observer.members()):
            assert time.monotonic() < deadline, "a kinship member never joined"
            await asyncio.sleep(0.05)
        await asyncio.sleep(2.0)  # settled
        events = observer.events()
        began = time.monotonic()
        process.send_signal(signal.SIGKILL)
        suspect = dead = 0.0
        async for event in events:
            if isinstance(event, kinship.MemberSuspect) and event.member.name == name and not suspect:
                suspect = time.monotonic() - began
            if isinstance(event, kinship.MemberDead) and event.member.name == name:
                dead = time.monotonic() - began
                break
        return suspect, dead
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


async def _member(port: int, name: str) -> asyncio.subprocess.Process:
    bind, seed = f"127.0.0.1:{free_port()}", f"127.0.0.1:{port}"
    return await asyncio.create_subprocess_exec(sys.executable, "-c", MEMBER, bind, seed, name)


async def _kinship() -> list[tuple[float, float]]:
    import kinship

    port = free_port()
    config = kinship.Config.lan(bind=f"127.0.0.1:{port}", seeds=[], name="observer", insecure_plaintext=True)
    results = []
    async with kinship.Cluster(config) as observer:
        bystander = await _member(port, "bystander")
        try:
            for trial in range(TRIALS):
                results.append(await _kinship_trial(observer, port, f"victim-{trial}"))
        finally:
            bystander.kill()
            await bystander.wait()
    return results


def _noosphere(root: Path, heartbeat: float, embedder: MiniLMEmbedder) -> list[tuple[float, float]]:
    results = []
    for trial in range(TRIALS):
        mesh = Mesh(root / f"hb{heartbeat}-{trial}", 3, heartbeat=heartbeat)
        with contextlib.ExitStack() as stack:
            observer = stack.enter_context(serve_node(mesh.settings[0], embedder))
            stack.enter_context(serve_node(mesh.settings[1], embedder))
            victim = contextlib.ExitStack()
            victim.enter_context(serve_node(mesh.settings[2], embedder))
            victim_id = mesh.keys[2].id

            deadline = time.monotonic() + 60
            while _state(observer, victim_id) != "alive":
                assert time.monotonic() < deadline, "the nodes never heard each other"
                time.sleep(0.05)
            time.sleep(2.0)  # settled
            began = time.monotonic()
            victim.close()  # it stops answering (it sends no goodbye: as if it crashed)
            suspect = dead = 0.0
            while not dead:
                seen = _state(observer, victim_id)
                if seen == "suspect" and not suspect:
                    suspect = time.monotonic() - began
                if seen == "dead":
                    dead = time.monotonic() - began
                time.sleep(0.05)
                assert time.monotonic() - began < 120, "the stopped node was never declared dead"
            results.append((suspect, dead))
    return results


def _state(url: str, peer: str) -> str:
    return str(httpx.get(url + "/readyz").json().get("peers", {}).get(peer))


def _row(name: str, results: list[tuple[float, float]]) -> str:
    suspects, deads = [s for s, _ in results], [d for _, d in results]
    return (
        f"| {name} | {len(results)} | {statistics.median(suspects):.1f} | {max(suspects):.1f} | "
        f"{statistics.median(deads):.1f} | {max(deads):.1f} |"
    )


async def run() -> None:
    embedder = MiniLMEmbedder()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [
            _row("kinship 0.4, LAN preset (probe every 1 s)", await _kinship()),
            _row("noosphere, heartbeat every 1 s", _noosphere(Path(tmp), 1.0, embedder)),
            _row("noosphere, heartbeat every 2 s (default)", _noosphere(Path(tmp), 2.0, embedder)),
        ]
    body = (
        "Three members on loopback; one is killed (kinship: SIGKILL; noosphere: its server stops, "
        "sending no goodbye); seconds until another member suspects it and declares it dead.\n\n"
        "| detector | trials | suspect p50 s | suspect max s | dead p50 s | dead max s |\n"
        "|---|---|---|---|---|---|\n" + "\n".join(rows)
    )
    write_section("membership", "Membership: noosphere against kinship", body)
