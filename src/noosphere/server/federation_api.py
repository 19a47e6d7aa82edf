"""Routes other nodes call, under ``/federation/``: authenticated by a request signed with the
calling node's key (``federation/signing.py``), never by a bearer token. A local principal's
token is refused here (403, as the authorization table says); a request without a valid peer
signature is refused with the signature's code (401, 403 for a request meant for another node,
503 while federation is paused), and the refusal is audited."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from noosphere.auth.permissions import authorize
from noosphere.errors import InvalidRequest
from noosphere.federation.records import ChangesRequest
from noosphere.federation.service import CHANGES_PATH, HEARTBEAT_PATH
from noosphere.federation.signing import FROM, Refused
from noosphere.server.deps import bearer_token, federation_of, node_of
from noosphere.server.errors import error_body, validation_message

router = APIRouter(tags=["federation"])


class PeerRefused(Exception):
    """Answered by ``refused_answer`` with the signature check's code and status."""

    def __init__(self, refused: Refused) -> None:
        super().__init__(refused.message)
        self.refused = refused


async def get_peer(request: Request) -> str:
    """The node id of the peer that signed this request."""
    headers = {name.lower(): value for name, value in request.headers.items()}
    route = request.scope.get("route")
    name = f"{request.method} {getattr(route, 'path', request.url.path)}"
    if FROM not in headers and headers.get("authorization"):  # a local caller, not a peer
        node = node_of(request.app)
        authorize("http", name, await node.authenticate(bearer_token(headers["authorization"])))
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    try:
        return await federation_of(request.app).admit(request.method, path, headers, await request.body())
    except Refused as refused:
        raise PeerRefused(refused) from None


async def refused_answer(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PeerRefused)
    refused = exc.refused
    return JSONResponse(error_body(refused.code, refused.message), status_code=refused.status)


PeerDep = Annotated[str, Depends(get_peer)]


@router.post(HEARTBEAT_PATH, summary="A peer node says it is alive")
async def heartbeat(request: Request, peer: PeerDep) -> dict[str, Any]:
    """Answered with this node's own heartbeat: its id, name, version and clock."""
    return federation_of(request.app).hello()


@router.post(CHANGES_PATH, summary="A peer reads this node's federated memories")
async def changes(request: Request, peer: PeerDep) -> dict[str, Any]:
    """The federated records changed after ``after``, in order, with their embeddings: the
    federated zone only (read through a view that holds nothing else). Ask again after ``last``."""
    try:
        asked = ChangesRequest.model_validate_json(await request.body() or b"{}")
    except ValidationError as exc:
        raise InvalidRequest(validation_message(exc.errors())) from None
    return await federation_of(request.app).changes(asked.after, asked.limit)
