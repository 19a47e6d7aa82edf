"""The node's dashboard at ``/`` (``/ui/…``): server-rendered pages (Jinja2), htmx and uPlot
vendored in the package, live panels over server-sent events. docs/dashboard.md shows it."""

from __future__ import annotations

from fastapi import FastAPI

from noosphere.dashboard import live, pages
from noosphere.dashboard.access import Refused, refused
from noosphere.dashboard.sessions import Sessions


def install(app: FastAPI) -> None:
    """Add the dashboard's routes to the node's app (each passes the authorization table)."""
    app.state.sessions = Sessions()
    app.state.history = None  # the overview's charts, once the node runs (``history.py``)
    for router in (pages.router, pages.pages, live.router, live.live):
        app.include_router(router)
    app.add_exception_handler(Refused, refused)


__all__ = ["install"]
