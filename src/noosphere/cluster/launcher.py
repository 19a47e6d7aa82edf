"""``noosphere cluster up``: a cluster on one machine. Starts the embedded PostgreSQL (+ pgvector)
and a NATS server with JetStream from their wheels, then N ``noosphere up`` processes on
consecutive ports, all one node; restarts a process that dies; Ctrl-C stops them all, then the
engines.

The cluster's data directory ``D`` holds:

- ``node-key.pem`` — the node's identity, which every process signs with (copied into theirs);
- ``admin-token`` — the admin credential every process is started with;
- ``cluster.yaml`` — the settings every process runs with: the given config file, plus the
  ``cluster`` section naming the two engines;
- ``postgres/``, ``nats/`` — the engines' data; ``processes/<i>/`` — each process's data
  directory (its run file and log);
- ``node.json`` — the run file through which the CLI on ``D`` reaches the first process.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from noosphere import runfile
from noosphere.auth.names import ADMIN_TOKEN_FILE
from noosphere.bus.nats_server import NatsServer
from noosphere.config import load_settings
from noosphere.config_file import read_config
from noosphere.identity import KEY_FILE, load_or_create
from noosphere.node import private_directory
from noosphere.runfile import RunInfo
from noosphere.store.pgserver import EmbeddedPostgres

logger = logging.getLogger(__name__)

CONFIG_FILE = "cluster.yaml"
RESTART_AFTER_S = 1.0
READY_TIMEOUT_S = 120.0


@dataclass
class Member:
    index: int
    port: int
    data_dir: Path
    local_worker: bool
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def admin_token(directory: Path) -> str:
    """The cluster's admin token, created on first use (mode 0600)."""
    from noosphere.auth.tokens import new_token

    path = directory / ADMIN_TOKEN_FILE
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    token = new_token()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return token


def write_config(directory: Path, base: Path | None, postgres_url: str, nats_url: str) -> Path:
    """``cluster.yaml``: the base config with the cluster's engines (checked like any config)."""
    import yaml

    settings: dict[str, Any] = read_config(base) if base is not None else {}
    given = settings.get("cluster") or {}
    settings["cluster"] = {**given, "postgres_url": postgres_url, "nats_url": nats_url}
    path = directory / CONFIG_FILE
    path.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    load_settings(path)  # refuse a base config that conflicts with a cluster now, not N times later
    return path


class Launcher:
    def __init__(
        self,
        directory: Path,
        processes: int,
        port: int,
        config: Path | None = None,
        local_workers: int = 1,
        host: str = "127.0.0.1",
    ) -> None:
        self.directory = directory.resolve()
        self.config = config
        self.host = host
        self.members = [
            Member(i, port + i, self.directory / "processes" / str(i), i < local_workers)
            for i in range(processes)
        ]
        self.postgres = EmbeddedPostgres(self.directory / "postgres")
        self.nats = NatsServer(self.directory / "nats")
        self.config_path: Path | None = None
        self._token = ""
        self._stopping = False

    # -- start ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the engines and every process; returns once each answers /readyz."""
        private_directory(self.directory)
        key = load_or_create(self.directory)
        self._token = admin_token(self.directory)
        logger.info("starting PostgreSQL in %s", self.postgres.directory)
        postgres_url = self.postgres.start()
        logger.info("starting NATS in %s", self.nats.directory)
        nats_url = self.nats.start()
        self.config_path = write_config(self.directory, self.config, postgres_url, nats_url)
        for member in self.members:
            private_directory(member.data_dir)
            shutil.copy2(self.directory / KEY_FILE, member.data_dir / KEY_FILE)
            self._spawn(member)
        for member in self.members:
            self._wait_ready(member)
        runfile.write(
            self.directory,
            RunInfo(os.getpid(), self.members[0].url, str(self.config_path), "postgres"),
        )
        logger.info("cluster of node %s is up: %d processes", key.id, len(self.members))

    def _spawn(self, member: Member) -> None:
        assert self.config_path is not None
        command = [
            sys.executable,
            "-m",
            "noosphere",
            "up",
            "--config",
            str(self.config_path),
            "--data-dir",
            str(member.data_dir),
            "--host",
            self.host,
            "--port",
            str(member.port),
        ]
        if not member.local_worker:
            command.append("--no-local-worker")
        env = {**os.environ, "NOOSPHERE_ADMIN_TOKEN": self._token}
        env.pop("NOOSPHERE_DATA_DIR", None)
        log = (member.data_dir / "process.log").open("ab")
        # Its own session: a Ctrl-C reaches the launcher only, which stops the processes in order.
        member.process = subprocess.Popen(command, env=env, stdout=log, stderr=log, start_new_session=True)
        log.close()

    def respawn(self, member: Member) -> None:
        """Start a process that stopped again, and wait until it is ready."""
        self._spawn(member)
        self._wait_ready(member)

    def _wait_ready(self, member: Member) -> None:
        import httpx

        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            assert member.process is not None
            if member.process.poll() is not None:
                raise RuntimeError(
                    f"process {member.index} exited with {member.process.returncode} "
                    f"(see {member.data_dir / 'process.log'})"
                )
            try:
                if httpx.get(member.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"process {member.index} did not become ready on {member.url}")
            time.sleep(0.2)

    # -- run and stop --------------------------------------------------------------------------
    def watch(self) -> None:
        """Restart processes that die, until ``stop`` (or a signal)."""
        while not self._stopping:
            for member in self.members:
                process = member.process
                if process is not None and process.poll() is not None and not self._stopping:
                    member.restarts += 1
                    logger.warning(
                        "process %d exited with %s; restarting it (see %s)",
                        member.index,
                        process.returncode,
                        member.data_dir / "process.log",
                    )
                    time.sleep(RESTART_AFTER_S)
                    self._spawn(member)
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop every process (gracefully, then for good), then NATS and PostgreSQL."""
        self._stopping = True
        running = [m.process for m in self.members if m.process is not None and m.process.poll() is None]
        for process in running:
            process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 30
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        runfile.stopped(self.directory, os.getpid())
        self.nats.stop()
        self.postgres.stop()


__all__ = ["CONFIG_FILE", "Launcher", "Member", "admin_token", "write_config"]
