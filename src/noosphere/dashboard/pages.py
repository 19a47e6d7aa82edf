"""The dashboard's routes (``/ui/…``; ``/`` leads there): sign-in, the pages, and the forms that act
— approve, revoke, forget, pause federation. Every page and form passes ``access.person`` (the
authorization table); what it does goes through the same services as the API, and the governed
ones (approvals, memory) through the node's policy gate."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from noosphere.dashboard import views
from noosphere.dashboard.access import PersonDep, Refused, field, form_of, person, sessions_of
from noosphere.dashboard.render import render
from noosphere.dashboard.sessions import COOKIE
from noosphere.errors import NoosphereError, Unauthenticated
from noosphere.federation.admin import PeerAdmin
from noosphere.governance.checkpoints import Scope, Verdict
from noosphere.memory.model import ListQuery, SearchQuery, Zone
from noosphere.server import approvals_api, keys_api
from noosphere.server.approvals_api import DecisionIn
from noosphere.server.deps import node_of
from noosphere.server.errors import validation_message
from noosphere.server.keys_api import KeyIn

router = APIRouter(include_in_schema=False)
pages = APIRouter(prefix="/ui", include_in_schema=False, dependencies=[Depends(person)])

DAYS = (1.0, 7.0, 30.0)  # the pool page's spend periods


def _back(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def _safe_next(value: str) -> str:
    """Only a path of this node's dashboard (no open redirect to another site)."""
    return value if value.startswith("/ui") and not value.startswith("//") else "/ui"


# -- signing in -----------------------------------------------------------------------------------
@router.get("/")
async def root() -> RedirectResponse:
    return _back("/ui")


@router.get("/ui/login")
async def login_page(request: Request, next: str = "/ui") -> HTMLResponse:
    return render(request, "login.html", next=_safe_next(next), error=None)


@router.post("/ui/login")
async def login(request: Request) -> Response:
    form = await form_of(request)
    token, secret = field(form, "token").strip(), field(form, "secret") or None
    target = _safe_next(field(form, "next", "/ui"))
    node = node_of(request.app)
    try:
        principal = await node.authenticate(token, secret)
    except NoosphereError as exc:
        message = "that token is not valid here" if isinstance(exc, Unauthenticated) else exc.message
        return render(request, "login.html", next=target, error=message)
    if not principal.is_person:
        error = "the dashboard is for people: sign in with the admin token or a user's token"
        return render(request, "login.html", next=target, error=error)
    session = sessions_of(request).open(token, principal.id, secret)
    answer = _back(target)
    secure = request.url.scheme == "https"
    answer.set_cookie(COOKIE, session.id, httponly=True, samesite="strict", secure=secure, path="/")
    return answer


@router.post("/ui/logout")
async def logout(request: Request) -> RedirectResponse:
    sessions_of(request).close(request.cookies.get(COOKIE))
    answer = _back("/ui/login")
    answer.delete_cookie(COOKIE, path="/")
    return answer


# -- pages ----------------------------------------------------------------------------------------
@pages.get("")
async def overview(request: Request, who: PersonDep) -> HTMLResponse:
    return render(request, "overview.html", view=views.overview(request.app, who.is_admin))


@pages.get("/approvals")
async def approvals(request: Request, who: PersonDep) -> HTMLResponse:
    return render(request, "approvals.html", **await views.approvals(node_of(request.app), who))


@pages.post("/approvals/decide")
async def decide_approvals(request: Request, who: PersonDep) -> Response:
    """One decision (a row's button: ``one=ID:VERDICT:SCOPE``) or one for every ticked row."""
    form = await form_of(request)
    node = node_of(request.app)
    if one := field(form, "one"):
        approval_id, _, rest = one.partition(":")
        verdict_text, _, scope_text = rest.partition(":")
        chosen = [approval_id]
    else:
        chosen = form.get("ids", [])
        verdict_text, scope_text = field(form, "verdict"), field(form, "scope", "once")
    try:  # the API's own decision body: the same scopes and note length
        verdict = Verdict(verdict_text)
        decision = DecisionIn(scope=Scope(scope_text or "once"), note=field(form, "note") or None)
    except ValueError:
        raise Refused(
            400,
            "invalid_request",
            "choose approve, reject or escalate, and a note of at most 2000 characters",
        ) from None
    problems = []
    for approval_id in chosen[:200]:
        try:
            await approvals_api.decide(node, who, approval_id, verdict, decision)
        except NoosphereError as exc:
            problems.append(f"{approval_id}: {exc.message}")
    if problems:
        data = await views.approvals(node, who)
        return render(request, "approvals.html", status=409, problems=problems, **data)
    return _back("/ui/approvals")


@pages.get("/pool")
async def pool(request: Request, days: float = 7.0) -> HTMLResponse:
    period = days if days in DAYS else 7.0
    return render(request, "pool.html", periods=DAYS, **await views.pool(request.app, period))


@pages.post("/keys")
async def create_key(request: Request) -> HTMLResponse:
    """The form, checked as ``POST /api/v1/keys`` checks its body."""
    form = await form_of(request)
    fields = {name: field(form, name).strip() for name in ("user", "name", "rpm", "tpm", "budget")}
    wanted: dict[str, object] = {name: value for name, value in fields.items() if value}
    wanted["budget_period"] = field(form, "budget_period", "total")
    wanted["conversations"] = field(form, "conversations") == "on"
    try:
        body = KeyIn.model_validate(wanted)
    except ValidationError as exc:
        raise Refused(400, "invalid_request", validation_message(exc.errors())) from None
    created = await keys_api.create(node_of(request.app), body)
    data = await views.pool(request.app, 7.0)
    return render(request, "pool.html", periods=DAYS, new_key=created, **data)


@pages.post("/keys/revoke")
async def revoke_key(request: Request) -> RedirectResponse:
    await node_of(request.app).auth.revoke_api_key(field(await form_of(request), "key_id"))
    return _back("/ui/pool")


@pages.get("/agents")
async def agents(request: Request) -> HTMLResponse:
    return render(request, "agents.html", **await views.agents(request.app))


@pages.get("/memory")
async def memory(
    request: Request,
    who: PersonDep,
    q: str = "",
    zone: str = "",
    kind: str = "",
    tag: str = "",
) -> HTMLResponse:
    node = node_of(request.app)
    filters: dict[str, Any] = {}
    if zone in {z.value for z in Zone}:
        filters["zones"] = [zone]
    if kind.strip():
        filters["kinds"] = [kind.strip()]
    if tag.strip():
        filters["tags"] = [tag.strip()]
    hits: list[Any] = []
    error = None
    try:
        if q.strip():
            query = SearchQuery(query=q.strip(), limit=50, **filters)
            args = query.model_dump(mode="json")
            search = node.memory.search
            found = await node.governor.run(who, "memory_search", args, lambda: search(who, query))
            hits = [(h.memory, h.score) for h in found]
        else:
            listing = ListQuery(limit=50, **filters)
            args = listing.model_dump(mode="json")
            page = await node.governor.run(
                who, "memory_list", args, lambda: node.memory.list_memories(who, listing)
            )
            hits = [(m, None) for m in reversed(page.items)]
    except NoosphereError as exc:
        error = exc.message
    except ValidationError as exc:  # a query or filter the API would refuse (422) too
        error = validation_message(exc.errors())
    zones = [z.value for z in Zone]
    return render(
        request, "memory.html", hits=hits, error=error, q=q, zone=zone, kind=kind, tag=tag, zones=zones
    )


@pages.get("/memory/{memory_id}")
async def memory_record(request: Request, memory_id: str, who: PersonDep) -> HTMLResponse:
    node = node_of(request.app)
    args = {"id": memory_id}
    record = await node.governor.run(who, "memory_get", args, lambda: node.memory.get(who, memory_id))
    versions = await node.governor.run(
        who, "memory_history", args, lambda: node.memory.history(who, memory_id)
    )
    return render(request, "memory_record.html", memory=record, versions=versions)


@pages.post("/memory/{memory_id}/forget")
async def forget(request: Request, memory_id: str, who: PersonDep) -> Response:
    """Forgets only with ``confirm=yes``; without it, the page asks first."""
    node = node_of(request.app)
    args = {"id": memory_id}
    if field(await form_of(request), "confirm") != "yes":
        record = await node.governor.run(who, "memory_get", args, lambda: node.memory.get(who, memory_id))
        return render(request, "forget.html", memory=record)
    await node.governor.run(who, "memory_forget", args, lambda: node.memory.forget(who, memory_id))
    return _back("/ui/memory")


@pages.get("/audit")
async def audit(request: Request, verify: bool = False) -> HTMLResponse:
    return render(request, "audit.html", **await views.audit(node_of(request.app), verify))


@pages.get("/federation")
async def federation(request: Request) -> HTMLResponse:
    return render(request, "federation.html", **await views.federation(request.app))


@pages.post("/federation/switch")
async def switch(request: Request) -> RedirectResponse:
    form = await form_of(request)
    node = node_of(request.app)
    paused = field(form, "action") == "pause"
    peers = PeerAdmin(node.settings.federation, node.store, node.audit)
    await peers.switch(paused, field(form, "peer") or None)
    return _back("/ui/federation")


@pages.get("/chat")
async def chat(request: Request) -> HTMLResponse:
    gateway = getattr(request.app.state, "gateway", None)
    models = [] if gateway is None else [m.id for m in gateway.models()]
    return render(request, "chat.html", models=models)


__all__ = ["pages", "router"]
