"""No API route sends its request through a worker thread before its handler runs. FastAPI runs
a plain ``def`` handler or dependency on anyio's thread pool: several event-loop passes per call,
which under a busy loop added ~9 ms to every memory, bus and approval call."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, APIWebSocketRoute

from noosphere.config import load_settings
from noosphere.server.app import create_app


def _blocking(dependant: Dependant, where: str) -> list[str]:
    found = []
    call = dependant.call
    if call is not None and not inspect.iscoroutinefunction(call):
        found.append(f"{where}: {getattr(call, '__qualname__', call)}")
    for child in dependant.dependencies:
        found += _blocking(child, where)
    return found


def _routes(routes: list[Any]) -> list[APIRoute | APIWebSocketRoute]:
    """Every API route, also inside included routers (which FastAPI now keeps as routers)."""
    found: list[APIRoute | APIWebSocketRoute] = []
    for route in routes:
        if isinstance(route, APIRoute | APIWebSocketRoute):
            found.append(route)
        inner = getattr(route, "original_router", None)
        if inner is not None:
            found += _routes(inner.routes)
            found_deps = [d.dependency for d in getattr(inner, "dependencies", [])]
            assert all(inspect.iscoroutinefunction(d) for d in found_deps)
    return found


def test_every_route_handler_and_dependency_is_async(tmp_path: Path) -> None:
    app = create_app(load_settings(None, data_dir=tmp_path / "node"))
    routes = _routes(app.router.routes)
    assert len(routes) > 40
    blocking = [found for route in routes for found in _blocking(route.dependant, route.path)]
    assert blocking == []
