"""How a CLI command calls the node's API: over HTTP when the node runs (as ``docker`` talks to its
daemon), or, offline, through the same routes served in this process on the data directory (no
background work starts: ``create_app(..., background=False)``). Either way the command sends one
kind of request and reads one kind of answer, and the authorization table of the routes decides.

The HTTP side is the standard library's ``http.client``: a read command against a running node
stays well under half a second, and an HTTP client library would cost a third of that to import.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NoReturn, Protocol

import typer

from noosphere.auth.names import SECRET_ENV, SECRET_HEADER
from noosphere.cli.target import Target
from noosphere.errors import NoosphereError

Params = Mapping[str, str | int | float | bool | list[str] | None]


class Api(Protocol):
    def call(
        self, method: str, path: str, body: Any = None, params: Params | None = None, timeout: float = 60
    ) -> Any:
        """The JSON answer of a 2xx; any other answer is printed as the node's error (exit 1)."""


def fail(code: str, message: str) -> NoReturn:
    from noosphere.cli.output import console

    console.print(f"[red]error[/red] ({code}): {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def query_string(params: Params | None) -> str:
    if not params:
        return ""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        if value is None:
            continue
        values = value if isinstance(value, list) else [value]
        pairs += [(key, str(v).lower() if isinstance(v, bool) else str(v)) for v in values]
    return "?" + urllib.parse.urlencode(pairs) if pairs else ""


def segment(value: str) -> str:
    """``value`` as one path segment of a URL (a name with a slash cannot reach another route)."""
    return urllib.parse.quote(value, safe="")


def answer_of(status: int, data: bytes) -> Any:
    try:
        parsed = json.loads(data) if data else None
    except ValueError:
        fail("bad_answer", f"the node answered {status} with something other than JSON")
    if 200 <= status < 300:
        return parsed
    error = parsed.get("error", {}) if isinstance(parsed, dict) else {}
    fail(
        str(error.get("code", f"http_{status}")),
        str(error.get("message", data[:200].decode(errors="replace"))),
    )


def headers_for(token: str) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    secret = os.environ.get(SECRET_ENV)
    if secret:
        headers[SECRET_HEADER] = secret
    return headers


class Remote:
    """The running node, over HTTP."""

    def __init__(self, url: str, token: str) -> None:
        self.url = urllib.parse.urlsplit(url)
        self.headers = headers_for(token)

    def call(
        self, method: str, path: str, body: Any = None, params: Params | None = None, timeout: float = 60
    ) -> Any:
        import http.client  # here, not at the top: it brings ssl and email, 30 ms

        data = None if body is None else json.dumps(body).encode()
        headers = dict(self.headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        kind = http.client.HTTPSConnection if self.url.scheme == "https" else http.client.HTTPConnection
        connection = kind(self.url.netloc, timeout=timeout)
        try:
            connection.request(method, self.url.path.rstrip("/") + path + query_string(params), data, headers)
            response = connection.getresponse()
            status, raw = response.status, response.read()
        except OSError as exc:
            fail("unavailable", f"no node answering at {self.url.geturl()} ({exc})")
        finally:
            connection.close()
        return answer_of(status, raw)


@contextmanager
def api(target: Target, token: str | None) -> Iterator[Api]:
    """The node ``target`` names, asked as ``token`` (default: the admin)."""
    if target.url is not None:
        try:
            caller = token or target.admin_token()
        except NoosphereError as exc:
            fail(exc.code, exc.message)
        yield Remote(target.url, caller)
        return
    from noosphere.cli.offline import offline_api  # the whole node: imported only offline

    with offline_api(target, token) as local:
        yield local


__all__ = ["Api", "api", "fail", "segment"]
