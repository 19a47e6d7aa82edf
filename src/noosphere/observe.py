"""How services report their operations to whoever measures them (the node's Prometheus series,
``server/metrics.py``) without knowing about it: a service holds an ``Observer`` (None when nobody
measures) and marks its public methods with ``@timed``."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


class Observer(Protocol):
    def operation(self, subsystem: str, name: str, seconds: float, ok: bool) -> None:
        """One call of ``subsystem``'s operation ``name`` ended after ``seconds``; ``ok`` is False
        when it raised (a refusal or a failure alike)."""


class Observed(Protocol):
    """A service that reports its operations: ``observer`` is None until someone measures."""

    observer: Observer | None
    subsystem: str


S = TypeVar("S", bound=Observed)


def timed(
    name: str,
) -> Callable[[Callable[Concatenate[S, P], Awaitable[R]]], Callable[Concatenate[S, P], Awaitable[R]]]:
    """Report each call of the decorated coroutine method to the service's observer as ``name``."""

    def decorate(
        method: Callable[Concatenate[S, P], Awaitable[R]],
    ) -> Callable[Concatenate[S, P], Awaitable[R]]:
        async def run(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
            observer = self.observer
            if observer is None:
                return await method(self, *args, **kwargs)
            started, ok = time.perf_counter(), False
            try:
                result = await method(self, *args, **kwargs)
                ok = True
                return result
            finally:
                observer.operation(self.subsystem, name, time.perf_counter() - started, ok)

        functools.update_wrapper(run, method)
        return run

    return decorate


def attach(observer: Observer, *services: Any) -> None:
    """Let ``observer`` measure each of ``services`` from now on."""
    for service in services:
        service.observer = observer


__all__ = ["Observed", "Observer", "attach", "timed"]
