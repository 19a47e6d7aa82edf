"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from noosphere.errors import NoosphereError
from noosphere.server.deps import bearer_token

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _is_admin(node: Any, request: Request) -> bool:
    try:
        principal = await node.authenticate(bearer_token(request.headers.get("authorization")))
    except NoosphereError:
        return False
    return bool(principal.is_admin)


@router.get(
    "/readyz",
    summary="The node can serve requests: its store answers; every background loop and the local "
    "worker process with its state",
)
async def readyz(request: Request) -> JSONResponse:
    """``ready`` (200) when the store answers and every background loop runs; ``degraded`` (200)
    when some loop is restarting after a failure; ``starting`` or ``unavailable`` (503) when the
    store cannot be used."""
    state = request.app.state
    node = getattr(state, "node", None)
    if node is None:
        return JSONResponse({"status": "starting"}, status_code=503)
    body: dict[str, Any] = {"node_id": node.key.id, "name": node.settings.name}
    federation = getattr(state, "federation", None)
    if federation is not None and federation.peers:
        body["peers"] = federation.states()
    supervisor = state.supervisor
    if supervisor is not None:
        # Anyone may ask; what a loop's last error said (paths, SQL, hosts) is for the admin only.
        admin = await _is_admin(node, request)
        body["loops"] = {
            name: {k: v for k, v in loop.as_dict().items() if admin or k != "last_error"}
            for name, loop in supervisor.loops.items()
        }
    if state.local_worker is not None:
        body["local_worker"] = state.local_worker.status.as_dict()
    try:
        await node.store.count()
    except NoosphereError as exc:
        body |= {"status": "unavailable", "store": f"{exc.code}: {exc.message}"}
        return JSONResponse(body, status_code=503)
    body["store"] = "ok"
    body["status"] = "degraded" if supervisor is not None and supervisor.failing() else "ready"
    return JSONResponse(body)
