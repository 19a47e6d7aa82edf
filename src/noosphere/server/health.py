"""Liveness and readiness."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import anyio
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


EMBEDDER_PROBE_SECONDS = 5.0  # an embedder that cannot embed one word in this long is down
EMBEDDER_CHECK_EVERY = 10.0  # a readiness answer reuses the embedder's last check this long


@dataclass
class Subsystem:
    """One line of the readiness answer: ``ok`` false fails it."""

    ok: bool
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"status": "ok" if self.ok else "down", **self.detail}


def _loop_ok(supervisor: Any, name: str) -> bool:
    loop = None if supervisor is None else supervisor.loops.get(name)
    return loop is None or loop.state != "restarting"


async def _store(node: Any) -> Subsystem:
    try:
        await node.store.count()
    except NoosphereError as exc:
        return Subsystem(False, {"error": f"{exc.code}: {exc.message}"})
    return Subsystem(True, {"backend": node.settings.storage.backend})


async def _embedder(node: Any, state: Any) -> Subsystem:
    """Embeds one word (a remote embedder may be away), at most every ``EMBEDDER_CHECK_EVERY``."""
    last: tuple[float, Subsystem] | None = getattr(state, "embedder_check", None)
    if last is not None and time.monotonic() - last[0] < EMBEDDER_CHECK_EVERY:
        return last[1]
    embedder = node.memory.embedder
    detail: dict[str, Any] = {"model": embedder.model_id, "dimension": embedder.dimension}
    try:
        with anyio.fail_after(EMBEDDER_PROBE_SECONDS):
            await node.memory.embed(["ready"])
        report = Subsystem(True, detail)
    except TimeoutError:
        report = Subsystem(False, detail | {"error": f"no embedding within {EMBEDDER_PROBE_SECONDS:g} s"})
    except NoosphereError as exc:
        report = Subsystem(False, detail | {"error": f"{exc.code}: {exc.message}"})
    state.embedder_check = (time.monotonic(), report)
    return report


def _pool(state: Any, supervisor: Any) -> Subsystem:
    gateway = getattr(state, "gateway", None)
    if gateway is None:
        return Subsystem(False, {"error": "the gateway is not running"})
    detail: dict[str, Any] = {
        "models": [m.id for m in gateway.models()],
        "workers": len(gateway.scheduler.workers),
        "queued": gateway.scheduler.queued(),
    }
    if state.local_worker is not None:
        detail["local_worker"] = state.local_worker.status.as_dict()
    return Subsystem(_loop_ok(supervisor, "pool_maintenance"), detail)


def _scheduler(node: Any, supervisor: Any) -> Subsystem:
    if not node.settings.scheduler.enabled:
        return Subsystem(True, {"enabled": False})
    return Subsystem(_loop_ok(supervisor, "scheduler"), {"enabled": True})


def _federation(state: Any, supervisor: Any) -> Subsystem:
    federation = getattr(state, "federation", None)
    if federation is None:
        return Subsystem(False, {"error": "federation is not running"})
    detail: dict[str, Any] = {"peers": len(federation.peers), "paused": federation.all_paused}
    return Subsystem(_loop_ok(supervisor, "federation"), detail)


@router.get(
    "/readyz",
    summary="The node can serve requests: each subsystem (store, embedder, pool, scheduler, "
    "federation) and each background loop, with the local worker process and the peers",
)
async def readyz(request: Request) -> JSONResponse:
    """``ready`` (200) when every subsystem is up and every background loop runs; ``unavailable``
    (503) naming what is down when one is not (a loop restarting after a failure is down until
    its next run starts); ``starting`` (503) while the node opens."""
    state = request.app.state
    node = getattr(state, "node", None)
    if node is None:
        return JSONResponse({"status": "starting"}, status_code=503)
    body: dict[str, Any] = {"node_id": node.key.id, "name": node.settings.name}
    supervisor = state.supervisor
    subsystems = {
        "store": await _store(node),
        "embedder": await _embedder(node, state),
        "pool": _pool(state, supervisor),
        "scheduler": _scheduler(node, supervisor),
        "federation": _federation(state, supervisor),
    }
    body["subsystems"] = {name: report.as_dict() for name, report in subsystems.items()}
    down = [name for name, report in subsystems.items() if not report.ok]
    federation = getattr(state, "federation", None)
    if federation is not None and federation.peers:
        body["peers"] = federation.states()
    if supervisor is not None:
        # Anyone may ask; what a loop's last error said (paths, SQL, hosts) is for the admin only.
        admin = await _is_admin(node, request)
        body["loops"] = {
            name: {k: v for k, v in loop.as_dict().items() if admin or k != "last_error"}
            for name, loop in supervisor.loops.items()
        }
        down += [f"loop:{name}" for name in supervisor.failing()]
    if state.local_worker is not None:
        body["local_worker"] = state.local_worker.status.as_dict()
    body["store"] = "ok" if subsystems["store"].ok else subsystems["store"].detail["error"]
    if down:
        body |= {"status": "unavailable", "down": down}
        return JSONResponse(body, status_code=503)
    body["status"] = "ready"
    return JSONResponse(body)
