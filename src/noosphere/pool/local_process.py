"""The node's own local model, as a separate ``noosphere worker`` process.

Native model code (llama.cpp) never runs inside the node: a crash there — a segfault, an illegal
instruction on a CPU the build did not expect, the kernel's OOM killer — costs the streams that
process was serving, not the node's memory, bus, approvals and audit log. ``noosphere up`` starts
the process, which joins the pool over the ordinary worker protocol (``/ws/worker``) with a worker
credential the node issues on each start; the node's ``Supervisor`` restarts it with backoff when
it dies. Its state is shown in ``/readyz``, ``GET /api/v1/pool`` and ``noosphere pool``.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import anyio
from anyio.abc import Process

from noosphere.config import Settings

logger = logging.getLogger(__name__)
STOP_GRACE_SECONDS = 5.0
LOCAL_WORKER_NAME = "local"


def describe_exit(returncode: int) -> str:
    """``exit 1``, ``killed by SIGKILL``, ..."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit {returncode}"


class WorkerExited(Exception):
    """The local worker process ended; the supervisor starts it again."""


@dataclass
class ProcessStatus:
    state: Literal["starting", "running", "restarting", "stopped"] = "starting"
    pid: int | None = None
    restarts: int = 0
    last_exit: str | None = None
    last_exit_at: float | None = None  # wall-clock time

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "pid": self.pid,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "last_exit_at": self.last_exit_at,
        }


class LocalWorkerProcess:
    """Starts ``noosphere worker`` for the node's local model and keeps it running.

    ``credential`` returns a worker token (the node issues a fresh one per start); the token goes
    to the child in its environment, never on its command line."""

    def __init__(
        self,
        settings: Settings,
        node_url: str,
        credential: Callable[[], Awaitable[str]],
        model_path: Path,
    ) -> None:
        self.settings = settings
        self.node_url = node_url
        self.credential = credential
        self.model_path = model_path
        self.status = ProcessStatus()
        self.model = settings.pool.local_model_name

    def command(self) -> list[str]:
        pool = self.settings.pool
        return [
            sys.executable,
            "-m",
            "noosphere",
            "worker",
            "--join",
            self.node_url,
            "--name",
            LOCAL_WORKER_NAME,
            "--model",
            str(self.model_path),
            "--model-name",
            pool.local_model_name,
            "--context",
            str(pool.local_context_length),
            "--threads",
            str(pool.local_threads),
            "--parent-pid",
            str(os.getpid()),
        ]

    async def run(self) -> None:
        """One life of the worker process: start it and wait for it. Its exit is raised as
        ``WorkerExited``, so the node's ``Supervisor`` restarts it with the backoff every loop
        gets; cancelled (the node stopping), it stops the process (SIGTERM, then SIGKILL)."""
        env = {**os.environ, "NOOSPHERE_WORKER_TOKEN": await self.credential()}
        self.status.state = "starting" if self.status.restarts == 0 else "restarting"
        process = await anyio.open_process(self.command(), env=env, stdin=None, stdout=None, stderr=None)
        self.status.pid, self.status.state = process.pid, "running"
        logger.info("local worker process %d started (%s)", process.pid, self.model)
        try:
            returncode = await process.wait()
        except BaseException:
            self.status.state = "stopped"
            raise
        finally:
            self.status.pid = None
            with anyio.CancelScope(shield=True):
                await _stop(process)
        self.status.last_exit = describe_exit(returncode)
        self.status.last_exit_at = time.time()
        self.status.restarts += 1
        self.status.state = "restarting"
        raise WorkerExited(f"the local worker process ended ({self.status.last_exit})")


async def _stop(process: Process) -> None:
    if process.returncode is not None:
        return
    process.terminate()
    with anyio.move_on_after(STOP_GRACE_SECONDS):
        await process.wait()
        return
    process.kill()
    await process.wait()


__all__ = ["LOCAL_WORKER_NAME", "LocalWorkerProcess", "ProcessStatus", "WorkerExited", "describe_exit"]
