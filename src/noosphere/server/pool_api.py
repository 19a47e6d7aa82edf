"""REST: ``GET /api/v1/pool`` — workers, their health checks, queue and load (admin)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request

from noosphere.server.deps import gateway_of
from noosphere.server.openai_api import GatewayDep

router = APIRouter(prefix="/api/v1", tags=["pool"])


@router.get("/pool", summary="Workers with their last check, load and models; the queue")
async def pool_status(request: Request, gateway: GatewayDep) -> dict[str, Any]:
    return pool_report(request.app)


def pool_report(app: Any) -> dict[str, Any]:
    """The pool as the API and the dashboard show it."""
    gateway = gateway_of(app)
    scheduler = gateway.scheduler
    checks = gateway.checker.results if gateway.checker else {}
    now = scheduler.clock()
    workers = []
    for worker in scheduler.workers.values():
        check = checks.get(worker.id)
        workers.append(
            {
                "id": worker.id,
                "name": worker.name,
                "kind": worker.kind,
                "models": sorted(worker.models),
                "capacity": worker.capacity,
                "running": len(worker.running),
                "healthy": worker.healthy,
                "throughput_tokens_per_s": round(worker.throughput, 2),
                "seconds_since_seen": round(now - worker.last_seen, 1),
                "last_check": None
                if check is None
                else {
                    "ok": check.ok,
                    "reason": check.reason,
                    "seconds_ago": round(time.time() - check.at, 1),
                    "ttft_s": check.ttft_s,
                    "tokens_per_second": check.tokens_per_second,
                    "sample": check.sample,
                },
            }
        )
    local = app.state.local_worker
    return {
        "local_worker": None if local is None else local.status.as_dict(),
        "workers": workers,
        "queued": scheduler.queued(),
        "models": [m.__dict__ for m in gateway.models()],
    }
