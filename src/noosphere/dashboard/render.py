"""Server-rendered pages: Jinja2 templates shipped in the package, autoescaped, with the few
filters the pages share (how long ago, how long until, JSON shown whole)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from noosphere import __version__


def _span(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def ago(when: datetime | float | None) -> str:
    if when is None:
        return "—"
    at = when.timestamp() if isinstance(when, datetime) else when
    return _span(datetime.now(UTC).timestamp() - at) + " ago"


def until(when: datetime | None) -> str:
    if when is None:
        return "—"
    left = when.timestamp() - datetime.now(UTC).timestamp()
    return "now" if left <= 0 else "in " + _span(left)


def sealed(memory: Any, person: Any) -> bool:
    """An L2 conversation this person cannot read: not theirs, or signed in without their secret."""
    if not memory.encrypted:
        return False
    return bool(person is None or memory.owner != person.id or person.l2_key is None)


def pretty(value: Any) -> str:
    """JSON text (or a JSON value) indented for reading; other text as it is."""
    if isinstance(value, str):
        text: str = value
        try:
            value = json.loads(text)
        except ValueError:
            return text
    shown: str = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
    return shown


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("noosphere.dashboard", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters |= {"ago": ago, "until": until, "pretty": pretty, "span": _span}
    env.globals["version"] = __version__
    env.globals["sealed"] = sealed
    return env


ENV = _environment()


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A page, with what every page shows: the node, who is signed in, the CSRF token."""
    node = getattr(request.app.state, "node", None)
    session = getattr(request.state, "session", None)
    person = getattr(request.state, "person", None)
    page = ENV.get_template(template).render(
        request=request,
        node_name=None if node is None else node.settings.name,
        node_id=None if node is None else node.key.id,
        person=person,
        csrf=None if session is None else session.csrf,
        path=request.url.path,
        **context,
    )
    return HTMLResponse(page, status_code=status, headers={"Cache-Control": "no-store"})


def fragment(template: str, **context: Any) -> str:
    """A piece of a page (what live updates swap in)."""
    return ENV.get_template(template).render(**context)


__all__ = ["ENV", "ago", "fragment", "pretty", "render", "until"]
