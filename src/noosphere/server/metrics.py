"""The node's Prometheus series (docs/metrics.md lists each) and ``GET /metrics``.

Two kinds of series. Events are counted as they happen: HTTP requests (``telemetry.py``), chat
jobs as the scheduler finishes them, memory and bus operations through their services'
observer (``observe.py``). States are read when Prometheus scrapes: the pool, the background
loops and federation from memory, approvals and mailboxes from the store. Each app has a
registry of its own, so several nodes in one process (the tests) never mix their numbers.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from noosphere import __version__
from noosphere.auth.permissions import authorize
from noosphere.pool.jobs import ChatJob
from noosphere.server.deps import bearer_token, get_principal, node_of

router = APIRouter(tags=["health"])

PENDING_SCAN = 1000  # most pending approvals one scrape reads (their count and the oldest's age)
SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
TOKENS_PER_SECOND = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0)


@dataclass
class StoreReadings:
    """What the last scrape read from the store (``refresh``)."""

    approvals_pending: int = 0
    oldest_pending_seconds: float = 0.0
    mailboxes: list[tuple[str, int, int, int]] = field(default_factory=list)  # name, ready, in flight, dead


class NodeMetrics:
    """One node's series: the observer its services report to, and the scrape-time collector."""

    def __init__(self, app: Any) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.started = time.time()
        self.readings = StoreReadings()
        self.requests_seen = 0  # totals for the dashboard's charts (``dashboard/history.py``)
        self.tokens_seen = 0
        registry = self.registry
        self.http_seconds = Histogram(
            "noosphere_http_request_duration_seconds",
            "HTTP requests by route template, method and status, and how long each took",
            ["method", "route", "status"],
            buckets=SECONDS,
            registry=registry,
        )
        self.first_token = Histogram(
            "noosphere_gateway_time_to_first_token_seconds",
            "From a chat job entering the queue to its first token, per model and worker",
            ["model", "worker"],
            buckets=SECONDS,
            registry=registry,
        )
        self.tokens_per_second = Histogram(
            "noosphere_gateway_tokens_per_second",
            "Completion tokens per second of a chat job after its first token, per model and worker",
            ["model", "worker"],
            buckets=TOKENS_PER_SECOND,
            registry=registry,
        )
        self.completion_tokens = Counter(
            "noosphere_gateway_completion_tokens",
            "Completion tokens streamed by workers, per model and worker",
            ["model", "worker"],
            registry=registry,
        )
        self.jobs = Counter(
            "noosphere_gateway_jobs",
            "Chat jobs a worker ran, by model and outcome (ok, cancelled, failed:<code>)",
            ["model", "outcome"],
            registry=registry,
        )
        self.queue_wait = Histogram(
            "noosphere_pool_queue_wait_seconds",
            "How long chat jobs waited in the queue before a worker took them, per model",
            ["model"],
            buckets=SECONDS,
            registry=registry,
        )
        self.operations = Counter(
            "noosphere_operations",
            "Memory and bus operations, by subsystem, operation and outcome (ok or error)",
            ["subsystem", "operation", "outcome"],
            registry=registry,
        )
        self.operation_seconds = Histogram(
            "noosphere_operation_duration_seconds",
            "How long memory and bus operations took (memory search is operation=search)",
            ["subsystem", "operation"],
            buckets=SECONDS,
            registry=registry,
        )
        registry.register(_Scraped(app, self))

    # -- events --------------------------------------------------------------------------------
    def operation(self, subsystem: str, name: str, seconds: float, ok: bool) -> None:
        self.operations.labels(subsystem, name, "ok" if ok else "error").inc()
        self.operation_seconds.labels(subsystem, name).observe(seconds)

    def job_finished(self, job: ChatJob) -> None:
        worker = job.worker_name or "none"
        self.jobs.labels(job.model, job.outcome).inc()
        if job.started_at is not None:
            self.queue_wait.labels(job.model).observe(max(0.0, job.started_at - job.submitted_at))
        if job.first_token_at is None:
            return
        self.first_token.labels(job.model, worker).observe(max(0.0, job.first_token_at - job.submitted_at))
        self.completion_tokens.labels(job.model, worker).inc(job.completion_tokens)
        self.tokens_seen += job.completion_tokens
        streaming = (job.finished_at or job.first_token_at) - job.first_token_at
        if streaming > 0 and job.completion_tokens > 1:
            # the first token opened the clock: the rest came in ``streaming`` seconds
            self.tokens_per_second.labels(job.model, worker).observe((job.completion_tokens - 1) / streaming)

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.http_seconds.labels(method, route, str(status)).observe(seconds)
        self.requests_seen += 1

    def totals(self) -> tuple[int, int]:
        """Requests answered and completion tokens streamed since the node started."""
        return self.requests_seen, self.tokens_seen

    # -- scrapes -------------------------------------------------------------------------------
    async def refresh(self, app: Any) -> None:
        """Read the states that live in the store (approvals, mailboxes)."""
        node = node_of(app)
        pending = await node.store.approvals("pending", PENDING_SCAN)
        now = datetime.now(UTC)
        readings = StoreReadings(approvals_pending=len(pending))
        if pending:
            oldest = min(record.created_at for record in pending)
            readings.oldest_pending_seconds = max(0.0, (now - oldest).total_seconds())
        readings.mailboxes = [(s.mailbox, s.ready, s.in_flight, s.dead) for s in await node.bus.stats()]
        self.readings = readings

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Scraped(Collector):
    """The states Prometheus reads at each scrape, from what the running app holds."""

    def __init__(self, app: Any, metrics: NodeMetrics) -> None:
        self.app = app
        self.metrics = metrics

    def describe(self) -> list[Any]:
        return []  # series are known only when the app runs

    def collect(self) -> Iterator[Any]:
        state = self.app.state
        node = getattr(state, "node", None)
        info = GaugeMetricFamily(
            "noosphere_node_info",
            "This node: its id, name and version (always 1)",
            labels=["node", "name", "version"],
        )
        if node is not None:
            info.add_metric([node.key.id, node.settings.name, __version__], 1)
        yield info
        yield GaugeMetricFamily(
            "noosphere_uptime_seconds",
            "Seconds since the node started",
            value=time.time() - self.metrics.started,
        )
        yield from self._pool(getattr(state, "gateway", None))
        yield from self._loops(getattr(state, "supervisor", None))
        yield from self._federation(getattr(state, "federation", None))
        yield from self._cluster(getattr(state, "cluster", None))
        yield from self._stored(node)

    def _cluster(self, cluster: Any) -> Iterator[Any]:
        processes = GaugeMetricFamily(
            "noosphere_cluster_processes", "Processes of this node's cluster this one hears (itself included)"
        )
        leases = GaugeMetricFamily(
            "noosphere_cluster_leases",
            "Once-per-cluster work this process runs now (1 each)",
            labels=["lease"],
        )
        jobs = CounterMetricFamily(
            "noosphere_cluster_jobs",
            "Chat jobs sent to other processes' workers and what came of them (sent, busy, lost), and "
            "jobs this process's workers served for others (served)",
            labels=["event"],
        )
        if cluster is not None:
            processes.add_metric([], 1 + len(cluster.pool.processes()))
            for name in sorted(cluster.leases.held):
                leases.add_metric([name], 1)
            for event, count in sorted(cluster.pool.counts.items()):
                jobs.add_metric([event], count)
        yield from (processes, leases, jobs)

    def _pool(self, gateway: Any) -> Iterator[Any]:
        depth = GaugeMetricFamily("noosphere_pool_queue_depth", "Chat jobs waiting for a worker")
        workers = GaugeMetricFamily(
            "noosphere_pool_workers",
            "Pool workers by kind (worker, cluster, upstream, peer) and state (healthy, excluded)",
            labels=["kind", "state"],
        )
        slots = GaugeMetricFamily("noosphere_pool_slots", "Concurrent jobs a model can run", labels=["model"])
        free = GaugeMetricFamily("noosphere_pool_free_slots", "Of those, free now", labels=["model"])
        if gateway is not None:
            depth.add_metric([], gateway.scheduler.queued())
            counts: dict[tuple[str, str], int] = {}
            for worker in gateway.scheduler.workers.values():
                key = (worker.kind, "healthy" if worker.healthy else "excluded")
                counts[key] = counts.get(key, 0) + 1
            for (kind, health), count in sorted(counts.items()):
                workers.add_metric([kind, health], count)
            for model in gateway.models():
                slots.add_metric([model.id], model.slots)
                free.add_metric([model.id], model.free_slots)
        yield from (depth, workers, slots, free)

    def _loops(self, supervisor: Any) -> Iterator[Any]:
        up = GaugeMetricFamily(
            "noosphere_loop_up", "Background loops: 1 running (or done), 0 restarting", labels=["loop"]
        )
        restarts = CounterMetricFamily(
            "noosphere_loop_restarts", "Times a background loop failed and was restarted", labels=["loop"]
        )
        if supervisor is not None:
            for name, loop in sorted(supervisor.loops.items()):
                up.add_metric([name], 0 if loop.state == "restarting" else 1)
                restarts.add_metric([name], loop.restarts)
        yield from (up, restarts)

    def _federation(self, federation: Any) -> Iterator[Any]:
        peers = GaugeMetricFamily("noosphere_federation_peers", "Configured peers by state", labels=["state"])
        lag = GaugeMetricFamily(
            "noosphere_federation_sync_lag_seconds",
            "Seconds since this node last read a peer's change feed to its end",
            labels=["peer"],
        )
        traffic = CounterMetricFamily(
            "noosphere_federation_bytes",
            "Bytes of federation requests to peers (sent) and their answers (received)",
            labels=["peer", "direction"],
        )
        if federation is not None:
            counts: dict[str, int] = {}
            for value in federation.states().values():
                counts[value] = counts.get(value, 0) + 1
            for value, count in sorted(counts.items()):
                peers.add_metric([value], count)
            now = time.time()
            for peer, at in sorted(federation.synced_at.items()):
                lag.add_metric([peer], now - at)
            for (peer, direction), count in sorted(federation.traffic.bytes.items()):
                traffic.add_metric([peer, direction], count)
        yield from (peers, lag, traffic)

    def _stored(self, node: Any) -> Iterator[Any]:
        readings = self.metrics.readings
        yield GaugeMetricFamily(
            "noosphere_audit_log_entries",
            "Entries in the audit log",
            value=0 if node is None else node.audit.size,
        )
        yield GaugeMetricFamily(
            "noosphere_approvals_pending",
            "Approval requests waiting for a person",
            value=readings.approvals_pending,
        )
        yield GaugeMetricFamily(
            "noosphere_approvals_oldest_pending_seconds",
            "How long the oldest pending approval request has waited (0 when none waits)",
            value=readings.oldest_pending_seconds,
        )
        depth = GaugeMetricFamily(
            "noosphere_bus_mailbox_messages",
            "Messages in each mailbox: ready (waiting), in_flight (leased, unacknowledged), dead",
            labels=["mailbox", "state"],
        )
        for mailbox, ready, in_flight, dead in readings.mailboxes:
            depth.add_metric([mailbox, "ready"], ready)
            depth.add_metric([mailbox, "in_flight"], in_flight)
            depth.add_metric([mailbox, "dead"], dead)
        yield depth


def metrics_token(app: Any) -> str | None:
    node = getattr(app.state, "node", None)
    configured = None if node is None else node.settings.auth.metrics_token
    return configured or os.environ.get("NOOSPHERE_METRICS_TOKEN") or None


@router.get(
    "/metrics",
    summary="Prometheus series of this node (docs/metrics.md); the admin token or the metrics token",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}},
)
async def metrics(request: Request) -> Response:
    # The metrics token is no principal of the node: it is compared here, and any other token
    # goes through the authorization table like every route's.
    token = bearer_token(request.headers.get("authorization"))
    expected = metrics_token(request.app)
    if token is None or expected is None or not hmac.compare_digest(token.encode(), expected.encode()):
        authorize("http", "GET /metrics", await get_principal(request, node_of(request.app)))
    observed: NodeMetrics = request.app.metrics
    await observed.refresh(request.app)
    return Response(observed.render(), media_type=CONTENT_TYPE_LATEST)


__all__ = ["NodeMetrics", "router"]
