"""The checker: pass/fail decisions, probes through the real scheduler, and the pool status."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from noosphere.config import load_settings
from noosphere.embeddings.minilm import MiniLMEmbedder
from noosphere.identity import load_or_create
from noosphere.pool.checker import Checker, assess
from noosphere.pool.inprocess import InProcessWorker
from noosphere.pool.jobs import ChatJob, JobState
from noosphere.pool.protocol import JobRequest
from noosphere.pool.scheduler import Scheduler
from noosphere.testing import FakeModel
from tests.integration.conftest import free_port
from tests.pool.conftest import Gateway, serve


@pytest.mark.parametrize(
    ("produced", "ttft", "speed", "error", "expected"),
    [
        (10, 0.2, 40.0, None, (True, "ok")),
        (0, None, None, None, (False, "produced no output")),
        (5, 0.1, None, "worker_crashed: boom", (False, "failed: worker_crashed: boom")),
        (10, 45.0, 40.0, None, (False, "first token after 45.0s (limit 30s)")),
        (10, 0.2, 0.5, None, (False, "0.5 tokens/s (minimum 2)")),
        (1, 0.2, None, None, (True, "ok")),  # one token: no speed to judge
    ],
)
def test_assess(
    produced: int, ttft: float | None, speed: float | None, error: str | None, expected: tuple[bool, str]
) -> None:
    assert assess(produced, ttft, speed, error, min_tokens_per_second=2, max_ttft_s=30) == expected


async def test_probes_exclude_failing_and_slow_workers_until_they_pass() -> None:
    scheduler = Scheduler()
    good = FakeModel("m", reply="fine and fast answer here")
    broken = FakeModel("m", reply="never gets far", fail_after=0)
    slow = FakeModel("m", reply="a b c d e f", delay=0.3)
    workers = [
        InProcessWorker(scheduler, backend, name)
        for backend, name in ((good, "good"), (broken, "broken"), (slow, "slow"))
    ]
    tasks = [asyncio.create_task(w.run()) for w in workers]
    await asyncio.sleep(0)
    checker = Checker(scheduler, "Say hi", min_tokens_per_second=5, timeout=10)
    results = {w.worker.name: await checker.check(w.worker) for w in workers}
    assert results["good"].ok
    assert results["good"].tokens_per_second is not None
    assert not results["broken"].ok
    assert "crashed" in results["broken"].reason
    assert not results["slow"].ok
    assert "tokens/s" in results["slow"].reason
    assert [w.worker.healthy for w in workers] == [True, False, False]
    assert workers[0].worker.throughput == results["good"].tokens_per_second

    # Routing skips the excluded workers ...
    for _ in range(3):
        request = JobRequest(model="m", messages=[{"role": "user", "content": "x"}])
        job = ChatJob(
            user="user:u", model="m", request=request, prompt_tokens=1, deadline=scheduler.clock() + 5
        )
        scheduler.submit(job)
        assert job.state is JobState.RUNNING
        assert job.worker_id == workers[0].worker.id
        scheduler.cancel(job.id)
    # ... until a check passes again.
    broken.fail_after = None
    assert (await checker.check(workers[1].worker)).ok
    assert workers[1].worker.healthy
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@pytest.fixture
def checked(tmp_path: Path, minilm: MiniLMEmbedder) -> Iterator[Gateway]:
    settings = load_settings(None, data_dir=tmp_path / "checked", server={"port": free_port()})
    models = {"fake": FakeModel("fake"), "crashy": FakeModel("crashy", reply="a b c", fail_after=0)}
    yield from serve(settings, minilm, models)


def test_the_pool_shows_workers_and_their_checks(checked: Gateway) -> None:
    gateway = checked
    headers = {"Authorization": f"Bearer {gateway.token}"}
    deadline = time.monotonic() + 20
    while True:
        status = httpx.get(gateway.url + "/api/v1/pool", headers=headers).json()
        checked = {w["name"]: w for w in status["workers"] if w["last_check"]}
        if {"fake", "crashy"} <= set(checked):
            break
        assert time.monotonic() < deadline, "the checker did not run"
        time.sleep(0.1)
    assert checked["fake"]["healthy"]
    assert not checked["crashy"]["healthy"]
    assert checked["crashy"]["last_check"]["reason"].startswith("failed")
    refused = httpx.get(gateway.url + "/api/v1/pool", headers={"Authorization": "Bearer ns_nope"})
    assert refused.status_code == 401
    env = {**os.environ, "NOOSPHERE_DATA_DIR": str(gateway.settings.data_dir)}
    shown = subprocess.run(
        [sys.executable, "-m", "noosphere", "pool", "--url", gateway.url, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert {w["name"] for w in json.loads(shown.stdout)["workers"]} == {"fake", "crashy"}
    # The scheduler's worker_checker job checks every worker again (node-local ticks).
    ran = httpx.post(gateway.url + "/api/v1/jobs/worker_checker/run", headers=headers, timeout=60).json()
    assert (ran["outcome"], ran["detail"]) == ("ok", "checked 2 workers, 1 healthy")
    assert ran["tick"].startswith(f"{load_or_create(gateway.settings.data_dir).id}@manual:")
