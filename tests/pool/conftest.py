from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from noosphere.config import Settings, load_settings
from noosphere.embeddings.minilm import MiniLMEmbedder
from noosphere.pool.scheduler import Scheduler
from noosphere.server.app import create_app
from noosphere.testing import FakeModel
from tests.integration.conftest import free_port

TOOL_CALLS = [
    ("get_weather", '{"city": "Lyon", "unit": "celsius"}'),
    ("get_time", '{"zone": "Europe/Paris"}'),
]


@dataclass
class Gateway:
    url: str
    settings: Settings
    models: dict[str, FakeModel]
    app: Any = None  # the node's ASGI app: its state is readable from the test's thread
    server: Any = None  # its uvicorn server (its event loop: ``server.servers[0].get_loop()``)

    @property
    def token(self) -> str:
        return (self.settings.data_dir / "admin-token").read_text().strip()


def serve(settings: Settings, embedder: MiniLMEmbedder, models: dict[str, FakeModel]) -> Iterator[Gateway]:
    app = create_app(settings, embedder=embedder, backends=list(models.items()))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=settings.server.port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "gateway did not start"
        time.sleep(0.02)
    try:
        yield Gateway(f"http://127.0.0.1:{settings.server.port}", settings, models, app, server)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def gateway(tmp_path: Path, minilm: MiniLMEmbedder) -> Iterator[Gateway]:
    settings = load_settings(
        None,
        data_dir=tmp_path / "gw",
        server={"port": free_port()},
        pool={"aliases": {"smol": "fake"}, "queue_timeout_seconds": 1.0, "max_queued": 2, "checker": False},
    )
    models = {
        "fake": FakeModel("fake", reply="The quick brown fox jumps over the lazy dog"),
        "toolbot": FakeModel("toolbot", tool_calls=TOOL_CALLS),
        "slow": FakeModel("slow", reply=" ".join(f"w{i}" for i in range(100)), delay=0.02),
        "crashy": FakeModel("crashy", reply="one two three four five", fail_after=2),
    }
    yield from serve(settings, minilm, models)


def wait_for_model(url: str, token: str, model: str, seconds: float = 120) -> None:
    """Poll ``/v1/models`` until a worker serves ``model`` (a worker process takes a moment)."""
    deadline = time.monotonic() + seconds
    while True:
        listed = httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        if any(m["id"] == model and m["workers"] > 0 for m in listed.json()["data"]):
            return
        assert time.monotonic() < deadline, f"no worker served {model} within {seconds:g}s"
        time.sleep(0.1)


class Clock:
    """A clock the scheduler tests move by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def scheduler(clock: Clock) -> Scheduler:
    """A scheduler on the hand-moved clock, with no network."""
    return Scheduler(max_queued=10, spill_after=2.0, heartbeat_interval=5.0, clock=clock)
