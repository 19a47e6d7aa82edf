"""What the dashboard's pages show, read from the running node: each function gathers one page's
(or one live panel's) data for its template, from the same services the API answers with."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from noosphere import __version__
from noosphere.auth.principal import Principal
from noosphere.federation.admin import PeerAdmin
from noosphere.governance.checkpoints import Status
from noosphere.node import Node
from noosphere.store.contract import ApprovalRecord, TaskRecord

RECENT_AUDIT = 2000  # audit entries the agents page reads for the tool calls of recent tasks


def overview(app: Any, admin: bool) -> dict[str, Any]:
    """The node at a glance: identity, peers, workers and queue, loops, the last hour's traffic.
    The workers themselves are the admin's to see (as ``GET /api/v1/pool``); others see models."""
    state = app.state
    node: Node = state.node
    metrics = app.metrics
    gateway = state.gateway
    federation = state.federation
    loops = [] if state.supervisor is None else sorted(state.supervisor.loops.values(), key=lambda s: s.name)
    workers = []
    if gateway is not None:
        for w in gateway.scheduler.workers.values():
            workers.append(
                {
                    "name": w.name,
                    "kind": w.kind,
                    "models": sorted(w.models),
                    "running": len(w.running),
                    "capacity": w.capacity,
                    "healthy": w.healthy,
                }
            )
    history = getattr(state, "history", None)
    return {
        "node_id": node.key.id,
        "name": node.settings.name,
        "version": __version__,
        "uptime": time.time() - metrics.started,
        "storage": node.settings.storage.backend,
        "peers": {} if federation is None else federation.states(),
        "workers": workers if admin else None,
        "queued": 0 if gateway is None else gateway.scheduler.queued(),
        "models": [] if gateway is None else gateway.models(),
        "loops": loops,
        "series": {"at": [], "requests": [], "tokens": []} if history is None else history.per_minute(),
    }


@dataclass(frozen=True)
class ApprovalView:
    record: ApprovalRecord
    arguments: Any  # the call's arguments as the agent sent them (None: not kept, older requests)
    waited: float  # seconds since it was asked


def approval_view(record: ApprovalRecord) -> ApprovalView:
    arguments = None if record.args is None else json.loads(record.args)
    waited = (datetime.now(UTC) - record.created_at).total_seconds()
    return ApprovalView(record, arguments, waited)


async def approvals(node: Node, person: Principal) -> dict[str, Any]:
    """What waits for ``person`` (oldest first: the one that times out first) and what was decided."""
    pending = await node.checkpoints.recent_for(person, Status.PENDING, 500)
    recent = await node.checkpoints.recent_for(person, None, 100)
    return {
        "pending": [approval_view(r) for r in sorted(pending, key=lambda r: r.created_at)],
        "decided": [approval_view(r) for r in recent if r.status != Status.PENDING][:50],
    }


SPEND_GROUPS = ("key_id", "principal", "model", "worker")
DAILY = 7  # days of the spend-over-time table


async def daily_spend(node: Node, by: str, days: int = DAILY) -> tuple[list[str], dict[str, list[float]]]:
    """Credits per day for the last ``days`` days (today last), per group: each day's is the
    difference of two of the ledger's running totals."""
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    starts = [midnight - timedelta(days=back) for back in range(days - 1, -1, -1)]
    totals = [{r.group: r.credits for r in await node.store.usage_summary(by, start)} for start in starts]
    totals.append({})  # nothing after now
    groups = sorted({g for day in totals for g in day})
    series = {
        g: [round(totals[i].get(g, 0.0) - totals[i + 1].get(g, 0.0), 6) for i in range(days)] for g in groups
    }
    return [f"{start:%a %d}" for start in starts], series


async def pool(app: Any, days: float) -> dict[str, Any]:
    from noosphere.server.pool_api import pool_report

    node: Node = app.state.node
    since = datetime.fromtimestamp(time.time() - days * 86400, UTC)
    spend = {by: await node.store.usage_summary(by, since) for by in SPEND_GROUPS}
    daily = {by: await daily_spend(node, by) for by in SPEND_GROUPS}
    keys = await node.auth.api_keys(None)
    return {"report": pool_report(app), "spend": spend, "daily": daily, "keys": keys, "days": days}


@dataclass(frozen=True)
class TaskView:
    record: TaskRecord
    depth: int  # 0 for a task a person or outside caller gave; 1 for what that agent delegated, …
    calls: list[dict[str, Any]]  # the assignee's audited tool calls while it worked on it


def _task_tree(tasks: list[TaskRecord], calls: dict[str, list[dict[str, Any]]]) -> list[TaskView]:
    """Tasks in delegation order: each followed by the tasks its assignee delegated while it ran."""
    children: dict[str, list[TaskRecord]] = {}
    for task in tasks:
        children.setdefault(task.delegator, []).append(task)
    placed: set[str] = set()
    out: list[TaskView] = []

    def visit(task: TaskRecord, depth: int) -> None:
        if task.id in placed:
            return
        placed.add(task.id)
        mine = [
            c
            for c in calls.get(task.assignee, [])
            if task.created_at.isoformat() <= c["at"] <= task.updated_at.isoformat()
        ]
        out.append(TaskView(task, depth, mine))
        for child in sorted(children.get(task.assignee, []), key=lambda t: t.created_at):
            if task.created_at <= child.created_at <= task.updated_at:
                visit(child, depth + 1)

    assignees = {t.assignee for t in tasks}
    for task in sorted(tasks, key=lambda t: t.created_at):
        if task.delegator not in assignees:
            visit(task, 0)
    for task in sorted(tasks, key=lambda t: t.created_at):
        visit(task, 0)
    return out


async def agents(app: Any) -> dict[str, Any]:
    node: Node = app.state.node
    profiles = await node.agents.every()
    mailboxes = await node.bus.stats()
    tasks = await node.store.tasks(None, 100)
    size = max(node.audit.size, (await _log_size(node)))
    calls: dict[str, list[dict[str, Any]]] = {}
    for entry in await node.store.audit_entries(max(0, size - RECENT_AUDIT), RECENT_AUDIT):
        fields = json.loads(entry.entry)
        if fields.get("kind") == "tool":
            calls.setdefault(str(fields.get("actor")), []).append(
                {"at": fields.get("at", ""), **fields["body"]}
            )
    return {"profiles": profiles, "mailboxes": mailboxes, "tasks": _task_tree(tasks, calls)}


async def _log_size(node: Node) -> int:
    heads = await node.store.tree_heads()
    return heads[-1].size if heads else 0


async def audit(node: Node, verify: bool) -> dict[str, Any]:
    from noosphere.governance import head_file
    from noosphere.governance.audit import verify_log

    if verify:  # what the log holds now is covered by a signed head before it is checked
        await node.audit.sign_head()
    heads = await node.store.tree_heads()
    size = max(node.audit.size, heads[-1].size if heads else 0)
    start = max(0, size - 100)
    entries = []
    for entry in reversed(await node.store.audit_entries(start, 100)):
        fields = json.loads(entry.entry)
        entries.append({"seq": entry.seq, **fields})
    report = None
    if verify:
        anchors = head_file.read(node.settings.data_dir / head_file.HEAD_FILE)
        report = verify_log(await node.store.audit_entries(), heads, node.key.public, 64, anchors, [])
    return {
        "entries": entries,
        "size": size,
        "head": heads[-1] if heads else None,
        "report": report,
        "witnessed": await node.store.witnessed(),
    }


async def federation(app: Any) -> dict[str, Any]:
    node: Node = app.state.node
    live = app.state.federation
    peers = await PeerAdmin(node.settings.federation, node.store, node.audit).peers()
    now = time.time()
    rows = []
    for peer in peers:
        synced = None if live is None else live.synced_at.get(peer.id)
        reconciled = None if live is None else live.reconciled_at.get(peer.id)
        rows.append(
            {
                "peer": peer,
                "state": None if live is None else live.states().get(peer.id),
                "lag": None if synced is None else now - synced,
                "reconciled": reconciled,
            }
        )
    paused = bool(live is not None and live.all_paused) or "*" in await node.store.paused()
    return {"peers": rows, "paused": paused}


__all__ = ["agents", "approvals", "audit", "federation", "overview", "pool"]
