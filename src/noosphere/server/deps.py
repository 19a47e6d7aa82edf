"""Request dependencies: the node, and the caller's principal from its bearer token."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from noosphere.auth.principal import Principal
from noosphere.errors import PermissionDenied, Unavailable
from noosphere.node import Node
from noosphere.pool.gateway import Gateway


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def node_of(app: Any) -> Node:
    """The app's open node; ``Unavailable`` while it starts or stops."""
    node: Node | None = app.state.node
    if node is None:
        raise Unavailable("the node is starting or stopping")
    return node


def gateway_of(app: Any) -> Gateway:
    """The app's gateway; ``Unavailable`` while it starts or stops."""
    gateway: Gateway | None = app.state.gateway
    if gateway is None:
        raise Unavailable("the gateway is starting or stopping")
    return gateway


def get_node(request: Request) -> Node:
    return node_of(request.app)


async def get_principal(request: Request, node: Annotated[Node, Depends(get_node)]) -> Principal:
    return await node.authenticate(bearer_token(request.headers.get("authorization")))


async def get_admin(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    if not principal.is_admin:
        raise PermissionDenied("this needs the admin token")
    return principal


NodeDep = Annotated[Node, Depends(get_node)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
AdminDep = Annotated[Principal, Depends(get_admin)]
