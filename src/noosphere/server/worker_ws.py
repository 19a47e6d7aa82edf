"""``/ws/worker``: remote workers join the pool here (protocol: ``pool/protocol.py``).

Thin: authenticate the hello, register the worker with the scheduler, then pump frames both ways
until the worker leaves, misbehaves or stops heartbeating. Everything else is the scheduler's.
"""

from __future__ import annotations

import logging
import uuid

import anyio
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from noosphere.auth.permissions import permits
from noosphere.auth.principal import PrincipalKind
from noosphere.errors import NoosphereError
from noosphere.pool.gateway import Gateway
from noosphere.pool.protocol import (
    PROTOCOL_VERSION,
    Accepted,
    Chunk,
    Done,
    Failed,
    Heartbeat,
    Hello,
    Rejected,
    worker_frames,
)
from noosphere.pool.scheduler import Worker

router = APIRouter()
logger = logging.getLogger(__name__)
HELLO_TIMEOUT_S = 10.0
POLICY_VIOLATION = 1008


async def _refuse(websocket: WebSocket, code: str, message: str) -> None:
    await websocket.send_text(Rejected(code=code, message=message).model_dump_json())
    await websocket.close(code=POLICY_VIOLATION, reason=code)


@router.websocket("/ws/worker")
async def worker_socket(websocket: WebSocket) -> None:
    gateway: Gateway | None = websocket.app.state.gateway
    node = websocket.app.state.node
    await websocket.accept()
    if gateway is None or node is None:
        await _refuse(websocket, "unavailable", "the node is starting or stopping")
        return
    try:
        with anyio.fail_after(HELLO_TIMEOUT_S):
            hello = worker_frames.validate_json(await websocket.receive_text())
    except (TimeoutError, ValidationError, WebSocketDisconnect):
        await _refuse(websocket, "protocol_error", "expected a hello frame first")
        return
    if not isinstance(hello, Hello):
        await _refuse(websocket, "protocol_error", "expected a hello frame first")
        return
    if hello.protocol != PROTOCOL_VERSION:
        await _refuse(websocket, "protocol_version", f"this node speaks protocol {PROTOCOL_VERSION}")
        return
    try:
        principal = await node.authenticate(hello.token)
    except NoosphereError as exc:
        await _refuse(websocket, exc.code, exc.message)
        return
    if not permits("ws", "/ws/worker", principal):
        await _refuse(websocket, "permission_denied", "joining the pool needs a worker token")
        return
    announced = {m.name for m in hello.models}
    if principal.models is not None and not announced <= set(principal.models):
        allowed = ", ".join(sorted(principal.models)) or "none"
        refused = ", ".join(sorted(announced - set(principal.models)))
        await _refuse(websocket, "permission_denied", f"this token may serve {allowed}, not {refused}")
        return

    scheduler = gateway.scheduler
    worker = Worker(
        id=f"{principal.id}:{hello.name}:{uuid.uuid4().hex[:6]}",
        name=hello.name,
        models={m.name: m for m in hello.models},
        capacity=hello.capacity,
        account=principal.id if principal.kind is PrincipalKind.WORKER else f"worker:{hello.name}",
    )
    scheduler.add_worker(worker)
    await websocket.send_text(
        Accepted(worker_id=worker.id, heartbeat_interval=scheduler.heartbeat_interval).model_dump_json()
    )
    logger.info("worker %s joined with %s", worker.id, ", ".join(worker.models))
    violation: str | None = None
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(_send, websocket, worker)
            group.start_soon(_close_when_dropped, websocket, worker, group.cancel_scope)
            violation = await _receive(websocket, worker, gateway)
            group.cancel_scope.cancel()
        if violation is not None:
            scheduler.remove_worker(worker.id, f"broke the protocol ({violation})")
            await _refuse(websocket, "protocol_error", violation)
    except* WebSocketDisconnect:  # the worker left (raised inside the task group, or after it)
        pass
    finally:
        scheduler.remove_worker(worker.id, "disconnected")
        logger.info("worker %s left: %s", worker.id, worker.close_reason)


async def _send(websocket: WebSocket, worker: Worker) -> None:
    while True:
        frame = await worker.outbox.get()
        await websocket.send_text(frame.model_dump_json())


async def _close_when_dropped(websocket: WebSocket, worker: Worker, scope: anyio.CancelScope) -> None:
    await worker.closed.wait()  # e.g. missed heartbeats
    scope.cancel()
    await websocket.close(code=POLICY_VIOLATION, reason=worker.close_reason[:120])


async def _receive(websocket: WebSocket, worker: Worker, gateway: Gateway) -> str:
    """Feed the worker's frames to the scheduler; returns what broke the protocol."""
    scheduler = gateway.scheduler
    while True:
        raw = await websocket.receive_text()
        try:
            frame = worker_frames.validate_json(raw)
        except ValidationError as exc:
            error = exc.errors()[0]
            return f"unreadable frame: {'.'.join(map(str, error['loc']))}: {error['msg']}"
        scheduler.seen(worker.id)
        if isinstance(frame, Chunk):
            scheduler.on_chunk(worker.id, frame)
        elif isinstance(frame, Done):
            scheduler.on_done(worker.id, frame)
        elif isinstance(frame, Failed):
            scheduler.on_failed(worker.id, frame)
        elif isinstance(frame, Heartbeat):
            continue
        else:
            return "hello was already received"
