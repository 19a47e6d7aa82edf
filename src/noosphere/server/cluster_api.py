"""REST: ``GET /api/v1/cluster`` — the processes of this node's cluster and who runs the
once-per-cluster work (admin)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from noosphere.errors import NotFound
from noosphere.server.deps import NodeDep

router = APIRouter(prefix="/api/v1", tags=["cluster"])


@router.get("/cluster", summary="The cluster's processes and the leases of its once-per-cluster work")
async def cluster_status(request: Request, node: NodeDep) -> dict[str, Any]:
    cluster = request.app.state.cluster
    if cluster is None:
        raise NotFound("this node is one process, not a cluster (no `cluster` settings)")
    return {"node": node.key.id, **await cluster.status()}
