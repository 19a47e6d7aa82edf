"""Request dependencies: what the running app holds (node, gateway, agent runtime, scheduler),
and the caller's principal from its bearer token."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from noosphere.agents.runtime import Runtime
from noosphere.auth.names import SECRET_HEADER
from noosphere.auth.permissions import authorize, permits
from noosphere.auth.principal import Principal
from noosphere.errors import Unavailable
from noosphere.federation.service import Federation
from noosphere.node import Node
from noosphere.pool.gateway import Gateway
from noosphere.scheduler import JobScheduler
from noosphere.server.interactive import InteractiveFirst


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _started(app: Any, name: str, what: str) -> Any:
    """``app.state.<name>``, set while the app runs; ``Unavailable`` while it starts or stops."""
    value = getattr(app.state, name, None)
    if value is None:
        raise Unavailable(f"{what} is starting or stopping")
    return value


def node_of(app: Any) -> Node:
    node: Node = _started(app, "node", "the node")
    return node


def gateway_of(app: Any) -> Gateway:
    gateway: Gateway = _started(app, "gateway", "the gateway")
    return gateway


def federation_of(app: Any) -> Federation:
    federation: Federation = _started(app, "federation", "federation")
    return federation


def turns_of(app: Any) -> InteractiveFirst:
    """The app's chat turns (``interactive.py``), set when the app is built."""
    turns: InteractiveFirst = app.interactive
    return turns


# The dependencies below are ``async`` although they never wait: FastAPI runs a plain ``def``
# dependency on a worker thread, and that trip through the thread pool cost each request several
# event-loop passes, tens of milliseconds when the loop is busy with chat streams.
async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = _started(request.app, "runtime", "the agent runtime")
    return runtime


async def get_scheduler(request: Request) -> JobScheduler:
    scheduler: JobScheduler = _started(request.app, "scheduler", "the scheduler")
    return scheduler


async def get_node(request: Request) -> Node:
    return node_of(request.app)


async def get_principal(request: Request, node: Annotated[Node, Depends(get_node)]) -> Principal:
    known: Principal | None = getattr(request.state, "principal", None)
    if known is not None:
        return known
    headers = request.headers
    principal = await node.authenticate(
        bearer_token(headers.get("authorization")), headers.get(SECRET_HEADER)
    )
    request.state.principal = principal
    if request.url.path.startswith("/api/"):  # an agent's call: chats make way for it
        turns_of(request.app).call_arrived()
    return principal


async def authorize_route(request: Request) -> None:
    """The authorization table (``auth/permissions.py``) for the route being called: every
    router of the app depends on this, so no route is reachable without its row."""
    route = request.scope.get("route")
    name = f"{request.method} {getattr(route, 'path', request.url.path)}"
    if permits("http", name, None):
        return
    authorize("http", name, await get_principal(request, node_of(request.app)))


NodeDep = Annotated[Node, Depends(get_node)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SchedulerDep = Annotated[JobScheduler, Depends(get_scheduler)]
