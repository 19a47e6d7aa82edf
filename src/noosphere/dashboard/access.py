"""Who is looking at a dashboard page, and whether they may.

A page is open to a signed-in person (the session cookie) or to a bearer token, and then only if
the authorization table (``auth/permissions.py``) has the page's route open to the caller's role:
the dashboard shows and does exactly what that person could through the API. A form sent with
the session cookie must carry the session's CSRF token (a field, or the ``X-CSRF-Token`` header
htmx sends); a bearer token is no cookie a foreign page could ride, and needs none."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qs, quote

from fastapi import Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from noosphere.auth.permissions import authorize
from noosphere.auth.principal import Principal
from noosphere.dashboard.render import render
from noosphere.dashboard.sessions import COOKIE, Session, Sessions
from noosphere.errors import NoosphereError, PermissionDenied, Unauthenticated
from noosphere.server.deps import bearer_token, node_of
from noosphere.server.errors import error_body

CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf"
FORM_MAX = 256 * 1024  # bytes of one dashboard form


class Refused(Exception):
    """A dashboard request that may not go on: a page for a browser, JSON for anything else."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def sessions_of(request: Request) -> Sessions:
    sessions: Sessions = request.app.state.sessions
    return sessions


def wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


async def form_of(request: Request) -> dict[str, list[str]]:
    """The request's url-encoded form (the dashboard's forms are small and flat)."""
    cached: dict[str, list[str]] | None = getattr(request.state, "form", None)
    if cached is not None:
        return cached
    body = await request.body()
    if len(body) > FORM_MAX:
        raise Refused(413, "payload_too_large", f"a dashboard form holds at most {FORM_MAX} bytes")
    try:
        form = parse_qs(body.decode(), keep_blank_values=True, max_num_fields=1000)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Refused(400, "invalid_request", f"not a form: {exc}") from None
    request.state.form = form
    return form


def field(form: dict[str, list[str]], name: str, default: str = "") -> str:
    values = form.get(name)
    return values[0] if values else default


async def person(request: Request) -> Principal:
    """The caller, if the table opens this page to them; ``Refused`` (401, 403) if not."""
    node = node_of(request.app)
    token = bearer_token(request.headers.get("authorization"))
    session: Session | None = None
    if token is None:
        session = sessions_of(request).get(request.cookies.get(COOKIE))
        if session is None:
            raise Refused(401, "unauthenticated", "sign in to see the dashboard")
        token = session.token
    try:
        principal = await node.authenticate(token, None if session is None else session.secret)
    except Unauthenticated:
        if session is not None:  # its token was revoked or rotated: the session ends with it
            sessions_of(request).close(session.id)
        raise Refused(401, "unauthenticated", "your token no longer works; sign in again") from None
    except NoosphereError as exc:
        raise Refused(exc.status, exc.code, exc.message) from None
    route = request.scope.get("route")
    try:
        authorize("http", f"{request.method} {getattr(route, 'path', request.url.path)}", principal)
    except PermissionDenied as exc:
        raise Refused(403, exc.code, exc.message) from None
    request.state.session, request.state.person = session, principal
    if request.method == "POST" and session is not None:
        given = request.headers.get(CSRF_HEADER) or field(await form_of(request), CSRF_FIELD) or None
        if not session.csrf_ok(given):
            raise Refused(403, "csrf_failed", "this form is stale or came from another site; reload the page")
    return principal


async def refused(request: Request, exc: Exception) -> Response:
    """``Refused`` as a browser expects it (the sign-in page, or a page saying why) or as JSON."""
    assert isinstance(exc, Refused)
    if exc.status == 401 and wants_html(request) and request.method == "GET":
        return RedirectResponse(f"/ui/login?next={quote(request.url.path)}", status_code=303)
    if wants_html(request):
        page = render(request, "refused.html", status=exc.status, code=exc.code, message=exc.message)
        return page
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
    return JSONResponse(error_body(exc.code, exc.message), exc.status, headers=headers)


PersonDep = Annotated[Principal, Depends(person)]

__all__ = ["PersonDep", "Refused", "field", "form_of", "person", "refused", "sessions_of"]
