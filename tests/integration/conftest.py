from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from noosphere.config import Settings, load_settings
from noosphere.embeddings.minilm import MiniLMEmbedder
from noosphere.pool.backends.base import Backend
from noosphere.server.app import create_app


@dataclass
class Live:
    url: str
    settings: Settings

    @property
    def admin_token(self) -> str:
        return (self.settings.data_dir / "admin-token").read_text().strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def client(tmp_path: Path, minilm: MiniLMEmbedder) -> Iterator[TestClient]:
    settings = load_settings(None, data_dir=tmp_path / "node", server={"max_body_bytes": 64 * 1024})
    with TestClient(create_app(settings, embedder=minilm)) as test_client:
        token = (settings.data_dir / "admin-token").read_text().strip()
        test_client.headers["Authorization"] = f"Bearer {token}"
        yield test_client


@pytest.fixture
def live(tmp_path: Path, minilm: MiniLMEmbedder) -> Iterator[Live]:
    """The node served by uvicorn on a real loopback socket, in a thread; stopped afterwards."""
    with serve_live(tmp_path / "live", minilm) as served:
        yield served


@contextmanager
def serve_live(
    data: Path,
    minilm: MiniLMEmbedder,
    backends: Sequence[tuple[str, Backend]] = (),
    local_model: Path | None = None,
    **sections: Any,
) -> Iterator[Live]:
    """A node on ``data`` served by uvicorn on a loopback port, in a thread, with in-process
    ``backends`` as its pool workers, ``local_model`` served by a supervised worker process, and
    settings ``sections`` (e.g. ``runtime={...}``); stopped on exit."""
    port = free_port()
    server = {"port": port, **sections.pop("server", {})}
    pool = {"checker": False, **sections.pop("pool", {})}
    settings = load_settings(None, data_dir=data, server=server, pool=pool, **sections)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, embedder=minilm, backends=backends, local_model=local_model),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield Live(f"http://127.0.0.1:{port}", settings)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def start_node(data: Path, port: int, *options: str) -> subprocess.Popen[str]:
    """``noosphere up`` as a real process on ``data``; the caller stops it."""
    env = {**os.environ, "NOOSPHERE_DATA_DIR": str(data)}
    env.pop("NOOSPHERE_ADMIN_TOKEN", None)
    return subprocess.Popen(
        [sys.executable, "-m", "noosphere", "up", "--port", str(port), *options],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_ready(process: subprocess.Popen[str], url: str) -> None:
    """Poll ``/readyz`` until the node answers; fail with its stderr if it exits first."""
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "node did not become ready"
        time.sleep(0.1)
