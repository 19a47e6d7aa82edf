"""Request dependencies: the node, and the caller's principal from its bearer token."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from noosphere.auth.principal import Principal
from noosphere.errors import PermissionDenied, Unavailable
from noosphere.node import Node


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def get_node(request: Request) -> Node:
    node: Node | None = getattr(request.app.state, "node", None)
    if node is None:
        raise Unavailable("the node is starting or stopping")
    return node


async def get_principal(request: Request, node: Annotated[Node, Depends(get_node)]) -> Principal:
    return await node.authenticate(bearer_token(request.headers.get("authorization")))


async def get_admin(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    if not principal.is_admin:
        raise PermissionDenied("this needs the admin token")
    return principal


NodeDep = Annotated[Node, Depends(get_node)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
AdminDep = Annotated[Principal, Depends(get_admin)]
