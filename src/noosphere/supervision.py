"""Supervised background work: every long-running loop of a node (accounting, approval sweeps,
the agent runtime, the scheduler, the worker checker, the local model process, ...) runs under one
``Supervisor``.

A loop that raises is logged with its traceback, counted, and started again after a backoff
(1, 2, 5, 10, 30, then 60 s; back to 1 s once it has run for a minute). It never cancels its
siblings, and the HTTP side never keeps answering while nothing runs behind it unnoticed:
``/readyz`` reports every loop's state. Cancellation (the node stopping) ends the loops for good.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
from anyio.abc import TaskGroup, TaskStatus

logger = logging.getLogger(__name__)

BACKOFF_SECONDS: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
STABLE_SECONDS = 60.0  # a loop that ran this long before failing starts again from the first delay

LoopStateName = Literal["running", "restarting", "finished"]
Loop = Callable[..., Awaitable[Any]]


@dataclass
class LoopState:
    """What ``/readyz`` shows of one loop."""

    name: str
    state: LoopStateName = "running"
    restarts: int = 0
    last_error: str | None = None
    last_error_at: float | None = None  # wall-clock time
    started_at: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "restarts": self.restarts,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
        }


def backoff_delay(failures: int, schedule: Sequence[float] = BACKOFF_SECONDS) -> float:
    """The wait before restart number ``failures`` (1-based) of a loop that keeps failing."""
    return schedule[min(max(failures, 1), len(schedule)) - 1]


class Supervisor:
    """Starts named loops in ``group`` and restarts the ones that fail."""

    def __init__(
        self,
        group: TaskGroup,
        schedule: Sequence[float] = BACKOFF_SECONDS,
        stable_seconds: float = STABLE_SECONDS,
    ) -> None:
        self._group = group
        self._schedule = tuple(schedule)
        self._stable = stable_seconds
        self.loops: dict[str, LoopState] = {}

    def start(self, name: str, loop: Loop, *args: Any) -> None:
        """Run ``loop(*args)`` under supervision, from now on."""
        self.loops[name] = LoopState(name)
        self._group.start_soon(self._supervise, name, loop, args, None, name=f"loop:{name}")

    async def start_ready(self, name: str, loop: Loop, *args: Any) -> None:
        """Like ``start`` for a loop that takes ``task_status`` (anyio's start protocol): returns
        once its first run says it is ready, or has failed (then it restarts like any other)."""
        self.loops[name] = LoopState(name)
        await self._group.start(self._supervise, name, loop, args, name=f"loop:{name}")

    def failing(self) -> list[str]:
        return [s.name for s in self.loops.values() if s.state == "restarting"]

    async def _supervise(
        self,
        name: str,
        loop: Loop,
        args: tuple[Any, ...],
        task_status: TaskStatus[None] | None = None,
    ) -> None:
        """``task_status`` is set for a ``start_ready`` loop's first run only; later runs use the
        loop's own default (anyio's ``TASK_STATUS_IGNORED``)."""
        state = self.loops[name]
        failures = 0
        while True:
            started = time.monotonic()
            state.state, state.started_at = "running", time.time()
            try:
                if task_status is None:
                    await loop(*args)
                else:
                    await loop(*args, task_status=task_status)
            except Exception as exc:
                _release(task_status)
                task_status = None
                failures = 1 if time.monotonic() - started >= self._stable else failures + 1
                delay = backoff_delay(failures, self._schedule)
                state.state = "restarting"
                state.restarts += 1
                state.last_error = f"{type(exc).__name__}: {exc}"[:500]
                state.last_error_at = time.time()
                logger.exception("background loop %s failed; restarting in %gs", name, delay)
                await anyio.sleep(delay)
            else:
                state.state = "finished"
                return


class Dormant(Supervisor):
    """Starts nothing: the app the CLI serves its routes with offline runs no background work."""

    def start(self, name: str, loop: Loop, *args: Any) -> None:
        return

    async def start_ready(self, name: str, loop: Loop, *args: Any) -> None:
        return


def _release(task_status: TaskStatus[None] | None) -> None:
    """Let a ``start_ready`` caller go on when the loop's first run failed before it was ready."""
    if task_status is None:
        return
    with contextlib.suppress(RuntimeError):  # it had said it was ready, then failed
        task_status.started()


__all__ = ["BACKOFF_SECONDS", "Dormant", "LoopState", "Supervisor", "backoff_delay"]
