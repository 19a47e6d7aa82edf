"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The node has opened its store and can serve requests")
async def readyz(request: Request) -> JSONResponse:
    node = getattr(request.app.state, "node", None)
    if node is None:
        return JSONResponse({"status": "starting"}, status_code=503)
    await node.store.count()
    return JSONResponse({"status": "ready", "node_id": node.settings.node_id})
