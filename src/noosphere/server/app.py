"""``create_app(settings)``: the ASGI app of one node, owning every background task in one
lifespan, each loop supervised (``supervision.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from fastapi import Depends, FastAPI
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from noosphere import __version__, dashboard
from noosphere.agents.model import PoolModel
from noosphere.agents.runtime import Runtime
from noosphere.auth.principal import PrincipalKind
from noosphere.config import Settings
from noosphere.dashboard.history import History
from noosphere.embeddings import Embedder
from noosphere.errors import PayloadTooLarge
from noosphere.federation.forwarding import ChatDesk, Forwarding
from noosphere.federation.records import ModelCapacity
from noosphere.federation.service import Federation, Offers
from noosphere.federation.tasks import TaskDesk, TaskForwarding
from noosphere.governance.checkpoints import SWEEP_SECONDS
from noosphere.node import Node, open_node
from noosphere.observe import attach
from noosphere.pool.backends.base import Backend
from noosphere.pool.backends.openai_compat import OpenAICompatibleBackend
from noosphere.pool.checker import Checker
from noosphere.pool.gateway import Gateway
from noosphere.pool.inprocess import InProcessWorker
from noosphere.pool.ledger import Ledger
from noosphere.pool.local_process import LOCAL_WORKER_NAME, LocalWorkerProcess
from noosphere.pool.protocol import ModelOffer
from noosphere.pool.scheduler import Scheduler
from noosphere.pool.tokens import TokenCounter
from noosphere.scheduler import JobScheduler, build_jobs
from noosphere.server import (
    agents_api,
    approvals_api,
    audit_api,
    bus_api,
    cluster_api,
    federation_api,
    health,
    jobs_api,
    keys_api,
    memories,
    openai_api,
    peers_api,
    pool_api,
    principals,
    worker_ws,
)
from noosphere.server import (
    metrics as metrics_api,
)
from noosphere.server.chat_completions import ChatCompletions
from noosphere.server.deps import authorize_route, turns_of
from noosphere.server.errors import error_body, install_error_handlers, send_json
from noosphere.server.interactive import InteractiveFirst
from noosphere.server.metrics import NodeMetrics
from noosphere.server.openapi import install_openapi
from noosphere.server.telemetry import RequestTelemetry
from noosphere.supervision import Dormant, Supervisor

if TYPE_CHECKING:
    from noosphere.cluster.process import ClusterProcess


async def _every(seconds: float, job: Callable[[], Awaitable[object]]) -> None:
    """Run ``job`` every ``seconds``, forever (a failure ends the run; the supervisor restarts it)."""
    while True:
        await anyio.sleep(seconds)
        await job()


def local_base(settings: Settings) -> str:
    """Where a client on this machine reaches the node (a wildcard bind answers on loopback)."""
    host = settings.server.host
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://{f'[{host}]' if ':' in host else host}:{settings.server.port}"


def _local_url(settings: Settings) -> str:
    """Where a worker process on this machine reaches the node."""
    return "ws" + local_base(settings).removeprefix("http")


def _gateway(settings: Settings, node: Node) -> Gateway:
    pool = settings.pool
    scheduler = Scheduler(
        max_queued=pool.max_queued,
        spill_after=pool.spill_after_seconds,
        heartbeat_interval=pool.heartbeat_interval_seconds,
        stall_after=pool.stall_timeout_seconds,
    )
    counter = TokenCounter()
    checker = None
    if pool.checker:
        checker = Checker(
            scheduler,
            pool.check_prompt,
            pool.check_min_tokens_per_second,
            pool.check_timeout_seconds,
        )
    return Gateway(scheduler, pool, counter, Ledger(node.store, counter), memory=node.memory, checker=checker)


async def _join_cluster(
    settings: Settings, node: Node, gateway: Gateway, loops: Supervisor, background: bool
) -> ClusterProcess | None:
    """This process's part in a cluster (``cluster`` settings), joined; None on a lone node and
    for the CLI's offline app (which serves routes and dispatches nothing)."""
    if settings.cluster is None or not background:
        return None
    from noosphere.cluster.process import ClusterProcess
    from noosphere.store.postgres.cluster import PostgresCluster

    assert isinstance(node.store, PostgresCluster)  # a cluster's settings choose PostgreSQL
    cluster = ClusterProcess(settings, node.store, gateway, local_base(settings))
    await cluster.join(loops)
    return cluster


class BodyLimit:
    """Refuse request bodies above ``limit`` bytes with a JSON 413: at once when Content-Length
    says so, and as soon as a chunked body crosses the limit (the reader gets ``PayloadTooLarge``
    instead of the next chunk, so at most ``limit`` bytes are ever held)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = f"request body exceeds {self.limit} bytes"
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await send_json(send, 413, error_body("payload_too_large", message))
            return
        received, over, started = 0, False, False

        async def limited() -> Message:
            nonlocal received, over
            event = await receive()
            if event["type"] == "http.request":
                received += len(event.get("body", b""))
                if received > self.limit:
                    over = True
                    raise PayloadTooLarge(message)
            return event

        async def answer(event: Message) -> None:
            nonlocal started
            if over:  # whatever the app makes of a body it could not finish reading, 413 replaces it
                return
            started = started or event["type"] == "http.response.start"
            await send(event)

        try:
            await self.app(scope, limited, answer)
        except Exception:
            if not over:
                raise
        if over and not started:
            await send_json(send, 413, error_body("payload_too_large", message))


class _NodeApp(FastAPI):
    """The node's FastAPI app behind the body size limit, with ``POST /v1/chat/completions``
    answered in front of FastAPI's middleware stack: the gateway's hottest route answers its own
    errors and needs none of the layers the other routes pass."""

    def __init__(self, body_limit: int, interactive: InteractiveFirst, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.interactive = interactive
        self.metrics = NodeMetrics(self)
        self._front = RequestTelemetry(BodyLimit(ChatCompletions(super().__call__), body_limit), self.metrics)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self
        await self._front(scope, receive, send)


def _offers(gateway: Gateway) -> Offers:
    """What this node's heartbeats offer peers: its own models' free slots (not those it reaches
    through other peers), and how many requests wait per slot."""
    models = [
        ModelCapacity(name=m.id, free=m.free_slots, slots=m.slots, context_length=m.context_length)
        for m in gateway.models(own=True)
    ]
    slots = sum(m.slots for m in models)
    return Offers(models=models, load=gateway.scheduler.queued() / max(1, slots))


def create_app(
    settings: Settings,
    embedder: Embedder | None = None,
    on_ready: Callable[[Node], None] | None = None,
    backends: Sequence[tuple[str, Backend]] = (),
    local_model: Path | None = None,
    background: bool = True,
) -> FastAPI:
    """The node's ASGI app. ``on_ready`` is called once the node is open (the runner prints
    where to find it); ``backends`` are (name, backend) pairs served in-process as pool workers
    (upstream APIs, fakes in tests); ``local_model`` is a GGUF file the node serves through a
    supervised ``noosphere worker`` process (``noosphere up`` passes the configured one).
    ``background=False``: no loop starts (no federation, agents, scheduler, sweeps, workers):
    the routes alone, for the CLI's offline administration (``cli/offline.py``)."""
    holder: dict[str, Any] = {}

    def current_node() -> Node:
        node: Node = holder["node"]
        return node

    def current_runtime() -> Runtime:
        runtime: Runtime = holder["runtime"]
        return runtime

    # MCP (its SDK takes a second to import) only where it is served: not in the CLI's offline app.
    mcp_app: Any = None
    if background:
        from noosphere.server.mcp import build_mcp, principal_from_http

        mcp_server = build_mcp(current_node, principal_from_http, current_runtime)
        mcp_app = mcp_server.streamable_http_app(
            streamable_http_path="/mcp",
            stateless_http=True,
            json_response=False,  # SSE, so long tools (run_agent) can stream progress notifications
            host=settings.server.host,
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_node(settings, embedder) as node, anyio.create_task_group() as tasks:
            holder["node"] = node
            app.state.node = node
            loops = app.state.supervisor = Supervisor(tasks) if background else Dormant(tasks)
            await node.bus.start()
            gateway = _gateway(settings, node)
            app.state.gateway = gateway
            cluster = app.state.cluster = await _join_cluster(settings, node, gateway, loops, background)

            def once(name: str, loop: Callable[..., Awaitable[object]], *args: Any) -> None:
                """A loop one process of a cluster runs at a time (any loop, on a lone node)."""
                if cluster is None:
                    loops.start(name, loop, *args)
                else:
                    cluster.once(loops, name, loop, *args)

            metrics: NodeMetrics = app.metrics  # type: ignore[attr-defined]
            gateway.scheduler.on_finished = metrics.job_finished
            attach(metrics, node.memory, node.bus)
            turns_of(app).govern(gateway.scheduler)
            federation = Federation(
                settings.federation, node.key, node.audit, settings.name, node.store, node.memory
            )
            app.state.federation = federation
            node.memory.elsewhere = federation  # searches with include_federation ask peers
            node.memory.on_federated_change = federation.ring
            federation.forwarding = Forwarding(gateway.scheduler, node.key, federation.session)
            app.state.chat_desk = ChatDesk(gateway, node.audit, node.key.id)
            if cluster is not None:  # a replay or a retry may reach another process
                federation.first_time = app.state.chat_desk.first_time = cluster.store.first_time
            # The embedder loads at its first use; a served node loads it now, off the request path.
            loops.start("embedder_warmup", node.memory.embed, ["warm up"])
            loops.start("federation", federation.run)  # peers may be added while it runs
            toolbox = None
            if background:
                from noosphere.agents.mcp_tools import McpToolbox

                toolbox = McpToolbox(settings.runtime.mcp_servers)
                await loops.start_ready("mcp_servers", toolbox.serve)
            runtime = Runtime(
                node, PoolModel(gateway), settings.pool.local_model_name, settings.runtime, toolbox=toolbox
            )
            app.state.runtime = holder["runtime"] = runtime
            if cluster is not None:
                runtime.exclusive = cluster.leases.holding
            federation.advertise(lambda: _offers(gateway))
            federation.desk = TaskDesk(
                runtime.delegation,
                node.agents,
                lambda: runtime.served,
                node.audit,
                node.key.id,
                settings.federation.tasks_per_peer,
            )
            runtime.delegation.remote = TaskForwarding(federation)
            loops.start("agent_runtime", runtime.serve)
            once("task_recovery", runtime.recover)
            follow = runtime.delegation.follow_remote
            once("remote_tasks", follow, settings.federation.heartbeat_seconds)
            jobs = build_jobs(settings.scheduler, node, runtime, gateway.checker)
            # Ticks are claimed in the store, so each runs once however many processes fire it; a
            # node-local job (the worker checker) is claimed per process, each checking its own workers.
            ticks_of = node.key.id if cluster is None else f"{node.key.id}/{cluster.name}"
            app.state.scheduler = JobScheduler(node, runtime.gate, jobs, node_id=ticks_of)
            if settings.scheduler.enabled:
                await loops.start_ready("scheduler", app.state.scheduler.run)
            interval = settings.governance.audit_head_interval_seconds
            once("audit_heads", _every, interval, node.audit.sign_head)
            once("approval_sweep", _every, SWEEP_SECONDS, node.checkpoints.expire_due)
            loops.start("pool_maintenance", gateway.maintain)
            app.state.history = History(metrics.totals)
            loops.start("dashboard_history", app.state.history.run)
            if gateway.checker is not None:
                loops.start("worker_checker", gateway.checker.run)
            for upstream in settings.pool.upstreams:
                offers = [ModelOffer(name=m, context_length=upstream.context_length) for m in upstream.models]
                backend = OpenAICompatibleBackend(upstream.base_url, offers, upstream.api_key)
                worker = InProcessWorker(
                    gateway.scheduler,
                    backend,
                    upstream.name,
                    capacity=upstream.max_concurrency,
                    upstream=True,
                )
                loops.start(f"upstream:{upstream.name}", worker.run)
            for name, local in backends:
                loops.start(f"backend:{name}", InProcessWorker(gateway.scheduler, local, name).run)
            app.state.local_worker = None
            if local_model is not None:
                pool = settings.pool
                gateway.expect(
                    ModelOffer(name=pool.local_model_name, context_length=pool.local_context_length)
                )
                process = LocalWorkerProcess(
                    settings,
                    _local_url(settings),
                    lambda: node.auth.issue(PrincipalKind.WORKER, LOCAL_WORKER_NAME, [pool.local_model_name]),
                    local_model,
                )
                app.state.local_worker = process
                loops.start("local_worker", process.run)
            if on_ready is not None:
                on_ready(node)
            async with mcp_app.router.lifespan_context(mcp_app) if mcp_app else nullcontext():
                yield
            turns_of(app).govern(None)
            federation.forwarding.close()
            await gateway.flush()
            await node.audit.sign_head()
            if cluster is not None:
                await cluster.leave()
            app.state.node = None
            app.state.gateway = None
            app.state.federation = None
            app.state.runtime = None
            app.state.scheduler = None
            tasks.cancel_scope.cancel()

    app = _NodeApp(
        settings.server.max_body_bytes,
        InteractiveFirst(settings.pool.streams_during_calls),
        title="noosphere",
        version=__version__,
        lifespan=lifespan,
        description="Shared long-term memory for LLM agents (REST; MCP at /mcp).",
    )
    app.state.node = None
    app.state.gateway = None
    app.state.federation = None
    app.state.supervisor = None
    app.state.cluster = None
    app.state.local_worker = None
    install_error_handlers(app)
    # Every route passes the authorization table first (the worker socket checks its own hello).
    routed = (
        health,
        memories,
        principals,
        keys_api,
        audit_api,
        peers_api,
        bus_api,
        approvals_api,
        agents_api,
        jobs_api,
        openai_api,
        pool_api,
        cluster_api,
    )
    for module in routed:
        app.include_router(module.router, dependencies=[Depends(authorize_route)])
    app.include_router(worker_ws.router)
    app.include_router(metrics_api.router)  # the metrics token is no principal: the route checks it
    # Other nodes prove who they are by signing (``federation_api.get_peer``), not with a token.
    app.include_router(federation_api.router)
    app.add_exception_handler(federation_api.PeerRefused, federation_api.refused_answer)
    # /mcp as a route of its own (not a mount at "/"): other paths keep their 404 and 405 answers.
    if mcp_app is not None:
        from noosphere.server.mcp import McpAuth

        app.router.routes.append(
            Route("/mcp", McpAuth(mcp_app, current_node), methods=["GET", "POST", "DELETE"])
        )
    dashboard.install(app)
    install_openapi(app)
    return app
