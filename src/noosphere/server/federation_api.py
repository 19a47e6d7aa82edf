"""Routes other nodes call, under ``/federation/``: authenticated by a request signed with the
calling node's key (``federation/signing.py``), never by a bearer token. A local principal's
token is refused here (403, as the authorization table says); a request without a valid peer
signature is refused with the signature's code (401, 403 for a request meant for another node,
503 while federation is paused), and the refusal is audited."""

from __future__ import annotations

import binascii
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ValidationError
from starlette.background import BackgroundTask

from noosphere.auth.permissions import authorize
from noosphere.config import PeerSettings
from noosphere.errors import InvalidRequest, Unavailable
from noosphere.federation.forwarding import CHAT_PATH, ChatDesk, ForwardedChat
from noosphere.federation.reconcile import Malformed
from noosphere.federation.records import (
    ChangesRequest,
    Hello,
    ReconcileRequest,
    RecordsRequest,
)
from noosphere.federation.search import SEARCH_PATH, PeerSearch, serve
from noosphere.federation.service import DOORBELL_PATH, HEARTBEAT_PATH
from noosphere.federation.signing import FROM, Refused
from noosphere.federation.sync import CHANGES_PATH, RECONCILE_PATH, RECORDS_PATH
from noosphere.federation.tasks import TASK_STATES_PATH, TASKS_PATH, ForwardedTask, TaskDesk, TaskStates
from noosphere.federation.witness import (
    CONSISTENCY_PATH,
    HEAD_PATH,
    WITNESSED_PATH,
    ConsistencyRequest,
    WitnessedRequest,
    consistency,
    newest_head,
    witnessed_heads,
)
from noosphere.server.deps import bearer_token, federation_of, node_of
from noosphere.server.errors import error_body, validation_message

router = APIRouter(tags=["federation"])


class PeerRefused(Exception):
    """Answered by ``refused_answer`` with the signature check's code and status."""

    def __init__(self, refused: Refused) -> None:
        super().__init__(refused.message)
        self.refused = refused


async def get_peer(request: Request) -> PeerSettings:
    """The peer that signed this request."""
    headers = {name.lower(): value for name, value in request.headers.items()}
    route = request.scope.get("route")
    name = f"{request.method} {getattr(route, 'path', request.url.path)}"
    if FROM not in headers and headers.get("authorization"):  # a local caller, not a peer
        node = node_of(request.app)
        authorize("http", name, await node.authenticate(bearer_token(headers["authorization"])))
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    federation = federation_of(request.app)
    try:
        origin = await federation.admit(request.method, path, headers, await request.body())
    except Refused as refused:
        raise PeerRefused(refused) from None
    peer = federation.peers.get(origin)
    if peer is None:  # removed a moment ago
        raise PeerRefused(Refused("unknown_peer", 401, "this node does not federate with the caller"))
    return peer


async def refused_answer(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PeerRefused)
    refused = exc.refused
    return JSONResponse(error_body(refused.code, refused.message), status_code=refused.status)


PeerDep = Annotated[PeerSettings, Depends(get_peer)]


Body = TypeVar("Body", bound=BaseModel)


async def _read(request: Request, model: type[Body]) -> Body:
    try:
        return model.model_validate_json(await request.body() or b"{}")
    except ValidationError as exc:
        raise InvalidRequest(validation_message(exc.errors())) from None


@router.post(HEARTBEAT_PATH, summary="A peer node says it is alive")
async def heartbeat(request: Request, peer: PeerDep) -> dict[str, Any]:
    """The peer's ``Hello`` (who it is, what it offers) is kept; the answer is this node's own."""
    federation = federation_of(request.app)
    federation.greeted(peer.id, await _read(request, Hello))
    return (await federation.hello(peer)).model_dump(mode="json")


@router.post(DOORBELL_PATH, summary="A peer says its federated memories changed")
async def doorbell(request: Request, peer: PeerDep) -> dict[str, Any]:
    """This node pulls from its live peers at once instead of at its next interval."""
    federation_of(request.app).rung(peer.id)
    return {}


@router.post(CHANGES_PATH, summary="A peer reads this node's federated memories")
async def changes(request: Request, peer: PeerDep) -> dict[str, Any]:
    """The federated records changed after ``after``, in order, with their embeddings and seals:
    the federated zone only (read through a view that holds nothing else), within what the peer
    may read. Ask again after ``last``."""
    asked = await _read(request, ChangesRequest)
    federation = federation_of(request.app)
    return await federation.sync.changes(peer, asked.after, asked.limit)


@router.post(RECONCILE_PATH, summary="A peer reconciles its federated memories with this node's")
async def reconcile(request: Request, peer: PeerDep) -> dict[str, Any]:
    """One message of a range-based reconciliation the peer leads, with the records it found this
    node lacks; the answer (None when nothing is left to compare) comes with the records this node
    found the peer lacks."""
    asked = await _read(request, ReconcileRequest)
    try:
        return await federation_of(request.app).sync.reconcile(peer, asked)
    except (binascii.Error, Malformed) as exc:
        raise InvalidRequest(f"malformed reconciliation message: {exc}") from None


@router.post(SEARCH_PATH, summary="A peer searches this node's federated memories")
async def search(request: Request, peer: PeerDep) -> dict[str, Any]:
    """Hits among this node's federated memories (never another zone), within what the peer may
    read; a search that asks peers in turn is never passed on (one hop)."""
    asked = await _read(request, PeerSearch)
    return await serve(node_of(request.app).memory, peer, asked)


@router.post(CHAT_PATH, summary="A peer forwards a chat completion to this node's models")
async def chat(request: Request, peer: PeerDep) -> Response:
    """Runs as the forwarding node's request (metered and audited under ``peer:<its id>``), if
    this node lets that peer forward chats; the answer streams as worker-protocol frames, one
    JSON line each (chunks, then done or failed)."""
    asked = await _read(request, ForwardedChat)
    desk: ChatDesk = request.app.state.chat_desk
    stack = contextlib.AsyncExitStack()
    job, first = await stack.enter_async_context(desk.open(peer, asked))

    async def frames() -> AsyncIterator[bytes]:
        try:
            async for line in desk.frames(job, first):
                yield line
        finally:
            await stack.aclose()

    # The background close covers a client gone before the first byte (the body never starts).
    return StreamingResponse(
        frames(), media_type="application/x-ndjson", background=BackgroundTask(stack.aclose)
    )


@router.post(TASKS_PATH, summary="A peer gives one of this node's agents a task")
async def give_task(request: Request, peer: PeerDep) -> dict[str, Any]:
    """If this node lets that peer forward agent tasks, the agent serves tasks here, and the peer
    has room left (``federation.tasks_per_peer``): the task is recorded and queued in the agent's
    mailbox, metered and audited as the peer's. A key given before answers that task's state."""
    asked = await _read(request, ForwardedTask)
    return (await desk_of(request).take(peer, asked)).model_dump(mode="json")


@router.post(TASK_STATES_PATH, summary="A peer asks how the tasks it gave this node's agents are going")
async def task_states(request: Request, peer: PeerDep) -> dict[str, Any]:
    """Each task's status and result, by the peer's key; ``status`` null for a key it never gave."""
    asked = await _read(request, TaskStates)
    return (await desk_of(request).states(peer, asked)).model_dump(mode="json")


def desk_of(request: Request) -> TaskDesk:
    desk = federation_of(request.app).desk
    if desk is None:
        raise Unavailable("the agent runtime is not running")
    return desk


@router.post(HEAD_PATH, summary="A peer fetches this node's newest signed audit tree head")
async def audit_head(request: Request, peer: PeerDep) -> dict[str, Any]:
    """So peers can witness this node's audit log (``federation/witness.py``)."""
    return await newest_head(node_of(request.app).store)


@router.post(CONSISTENCY_PATH, summary="A peer asks for a consistency proof between two of its heads")
async def audit_consistency(request: Request, peer: PeerDep) -> dict[str, Any]:
    """The proof that this node's audit log at ``old_size`` is a prefix of it at ``size``."""
    asked = await _read(request, ConsistencyRequest)
    try:
        return await consistency(node_of(request.app).store, asked)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None


@router.post(WITNESSED_PATH, summary="A peer asks for the audit tree heads this node verified of other nodes")
async def audit_witnessed(request: Request, peer: PeerDep) -> dict[str, Any]:
    """Gossip between witnesses: the last head this node verified of each node asked about, so
    a node showing two peers two histories is caught (``federation/witness.py``)."""
    asked = await _read(request, WitnessedRequest)
    return await witnessed_heads(node_of(request.app).store, asked)


@router.post(RECORDS_PATH, summary="A peer fetches the records reconciliation found it lacks")
async def records(request: Request, peer: PeerDep) -> dict[str, Any]:
    asked = await _read(request, RecordsRequest)
    federation = federation_of(request.app)
    items = [bytes.fromhex(item) for item in asked.items]
    return await federation.sync.records_for(peer, items)
