"""The scheduler on a real node: cron ticks and topic triggers, the store-backed lock (one tick
runs once across processes), policy and audit for every run, and the built-in jobs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest
from pydantic import ValidationError

from noosphere.agents.model import Reply
from noosphere.agents.profile import AgentProfile
from noosphere.agents.runtime import Runtime
from noosphere.auth.principal import ADMIN_ID, Level, Principal, PrincipalKind
from noosphere.bus import Envelope, Kind
from noosphere.config import JobSettings, SchedulerSettings, Settings
from noosphere.embeddings.minilm import MiniLMEmbedder
from noosphere.governance.checkpoints import Verdict
from noosphere.governance.gate import Gate
from noosphere.memory.model import ListQuery, MemoryDraft, Zone
from noosphere.node import Node, open_node
from noosphere.scheduler import Historian, Job, JobScheduler, build_jobs, job_principal
from noosphere.scheduler.historian import parse
from noosphere.scheduler.scheduler import latest_tick
from noosphere.testing import ScriptedModel

ADMIN = Principal(ADMIN_ID, PrincipalKind.ADMIN, ADMIN_ID)
T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


class Counter:
    """A job body that counts its runs and what triggered them."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        self.ran = anyio.Event()

    async def __call__(self, payload: Mapping[str, Any]) -> str:
        self.payloads.append(dict(payload))
        self.ran.set()
        return f"run {len(self.payloads)}"


def scheduler(node: Node, *jobs: Job, node_id: str | None = None) -> JobScheduler:
    return JobScheduler(node, Gate(node.checkpoints, node.audit), list(jobs), node_id=node_id)


async def audit(node: Node) -> list[dict[str, Any]]:
    await node.audit.close()
    return [json.loads(e.entry) for e in await node.store.audit_entries()]


@pytest.mark.parametrize(
    ("cron", "after", "now", "expected"),
    [
        ("*/5 * * * *", T0, T0 + timedelta(minutes=4), None),
        ("*/5 * * * *", T0, T0 + timedelta(minutes=5), T0 + timedelta(minutes=5)),
        ("*/5 * * * *", T0, T0 + timedelta(minutes=23), T0 + timedelta(minutes=20)),  # missed: once
        ("0 9 * * 1-5", T0, T0 + timedelta(days=2), datetime(2026, 5, 6, 9, 0, tzinfo=UTC)),
        ("* * * * * */10", T0, T0 + timedelta(seconds=25), T0 + timedelta(seconds=20)),
    ],
)
def test_latest_tick_runs_a_missed_schedule_once(
    cron: str, after: datetime, now: datetime, expected: datetime | None
) -> None:
    assert latest_tick(cron, after, now) == expected


def test_job_settings_merge_with_the_built_in_jobs_and_are_validated() -> None:
    jobs = SchedulerSettings(
        jobs=[
            JobSettings(name="historian", cron="0 * * * *", topic="conversations.closed"),
            JobSettings(name="worker_checker", enabled=False),
            JobSettings(name="brief", cron="0 8 * * 1-5", agent="planner", task="Summarize yesterday."),
        ]
    ).effective_jobs()
    assert [(j.name, j.cron, j.topic) for j in jobs] == [
        ("memory_gc", "*/5 * * * *", None),
        ("historian", "0 * * * *", "conversations.closed"),
        ("brief", "0 8 * * 1-5", None),
    ]
    with pytest.raises(ValidationError, match="not a cron expression"):
        JobSettings(name="memory_gc", cron="every day")
    with pytest.raises(ValidationError, match="needs an `agent` and a `task`"):
        JobSettings(name="mystery", cron="* * * * *")
    with pytest.raises(ValidationError, match="needs a `cron` or a `topic`"):
        JobSettings(name="brief", agent="planner", task="x")
    with pytest.raises(ValidationError, match="built in"):
        JobSettings(name="historian", agent="planner", task="x")


async def test_a_tick_runs_once_even_when_two_processes_fire_it(any_node: Node) -> None:
    body = Counter()
    first = scheduler(any_node, Job("sweep", body, cron="*/5 * * * *"))
    second = scheduler(any_node, Job("sweep", body, cron="*/5 * * * *"))
    async with anyio.create_task_group() as group:
        for each in (first, second, first):
            group.start_soon(each.fire, "sweep", T0.isoformat(), {})
    assert len(body.payloads) == 1
    await first.fire("sweep", (T0 + timedelta(minutes=5)).isoformat(), {})
    runs = await any_node.store.job_runs("sweep", 10)
    assert [(r.tick, r.outcome, r.detail) for r in runs] == [
        ((T0 + timedelta(minutes=5)).isoformat(), "ok", "run 2"),
        (T0.isoformat(), "ok", "run 1"),
    ]


async def test_node_local_jobs_run_on_every_node(any_node: Node) -> None:
    body = Counter()
    job = Job("checker", body, cron="*/5 * * * *", local=True)
    await scheduler(any_node, job, node_id="a").fire("checker", T0.isoformat(), {})
    await scheduler(any_node, job, node_id="b").fire("checker", T0.isoformat(), {})
    await scheduler(any_node, job, node_id="b").fire("checker", T0.isoformat(), {})
    assert len(body.payloads) == 2
    assert sorted(r.tick for r in await any_node.store.job_runs("checker", 10)) == [
        f"a@{T0.isoformat()}",
        f"b@{T0.isoformat()}",
    ]


@pytest.fixture
async def ruled(settings: Settings, minilm: MiniLMEmbedder) -> Any:
    rules = {"deny": ["job(forbidden)"], "ask": ["job(careful)"]}
    governed = settings.model_copy(
        update={"governance": settings.governance.model_copy(update={"rules": rules})}
    )
    async with open_node(governed, embedder=minilm) as node:
        yield node


async def test_jobs_pass_policy_as_their_own_principal_and_are_audited(ruled: Node) -> None:
    forbidden, careful, plain = Counter(), Counter(), Counter()
    jobs = scheduler(
        ruled, Job("forbidden", forbidden), Job("careful", careful), Job("plain", plain, impact=0.1)
    )
    await jobs.fire("forbidden", "t1", {})

    async def approve() -> None:
        with anyio.fail_after(10):
            while not (pending := await ruled.checkpoints.recent()):  # noqa: ASYNC110 - the store has no event
                await anyio.sleep(0.05)
        assert (pending[0].requester, pending[0].tool, pending[0].subject) == (
            "job:careful",
            "job",
            "careful",
        )
        await ruled.checkpoints.decide(pending[0].id, ADMIN, Verdict.APPROVE)

    async with anyio.create_task_group() as group:
        group.start_soon(approve)
        await jobs.fire("careful", "t1", {})
    await jobs.fire("plain", "t1", {})
    assert (len(forbidden.payloads), len(careful.payloads), len(plain.payloads)) == (0, 1, 1)
    outcomes = {r.job: r.outcome for r in await ruled.store.job_runs(None, 10)}
    assert outcomes == {"forbidden": "denied", "careful": "ok", "plain": "ok"}
    entries = [
        (e["actor"], e["kind"], e["body"].get("effect") or e["body"].get("outcome"))
        for e in await audit(ruled)
    ]
    assert ("job:forbidden", "policy", "deny") in entries
    assert ("job:careful", "policy", "ask") in entries
    assert ("job:careful", "tool", "ok") in entries
    assert ("job:plain", "tool", "ok") in entries


async def test_cron_ticks_fire_in_real_time_and_topics_trigger_jobs(node: Node) -> None:
    ticking, triggered = Counter(), Counter()
    jobs = scheduler(
        node,
        Job("tick", ticking, cron="* * * * * *"),
        Job("on-build", triggered, topic="builds.>", senders=("ci", "deploy-*")),
    )
    async with anyio.create_task_group() as group:
        await group.start(jobs.run)
        # Anyone may publish to the topic; only the job's named senders fire it.
        forged = Envelope(Kind.EVENT, "mallory", {"build": 0, "status": "rm -rf"}, topic="builds.web.done")
        assert await node.bus.publish(forged) == ["job:on-build"]
        sent = Envelope(Kind.EVENT, "ci", {"build": 42, "status": "green"}, topic="builds.web.done")
        assert await node.bus.publish(sent) == ["job:on-build"]
        with anyio.fail_after(15):
            await triggered.ran.wait()
            await ticking.ran.wait()
        await jobs.fire("on-build", f"msg:{sent.id}", {"build": 42})  # a redelivery: already ran
        group.cancel_scope.cancel()
    assert triggered.payloads == [{"build": 42, "status": "green"}]
    runs = await node.store.job_runs("on-build", 10)
    assert [(r.tick, r.outcome) for r in runs] == [(f"msg:{sent.id}", "ok")]
    refused = [e["body"] for e in await audit(node) if e["actor"] == "mallory" and e["kind"] == "job"]
    assert refused == [{"job": "on-build", "event": "trigger_refused"}]
    assert ticking.payloads and all(p == {} for p in ticking.payloads)


def test_the_historians_reply_is_read_as_a_summary_and_decisions() -> None:
    reply = "They compared two plans.\n- DECISION: ship on Friday\nDecision: keep pnpm\n\nMore words."
    assert parse(reply) == ("They compared two plans. More words.", ["ship on Friday", "keep pnpm"])


async def test_the_historian_summarizes_finished_threads_and_promotes_decisions(any_node: Node) -> None:
    alice, bob = (Principal(f"agent:{n}", PrincipalKind.AGENT, n, Level.L2) for n in ("alice", "bob"))
    thread = [
        (alice, "message", "Should we ship on Friday or Monday?"),
        (bob, "message", "Friday; the fix is small."),
        (alice, "decision", "Keep the release branch frozen until then."),
    ]
    for who, kind, text in thread:
        await any_node.memory.store_one(
            who, MemoryDraft(content=text, zone=Zone.SHARED, kind=kind, thread_id="t-ship")
        )
    await any_node.memory.store_one(
        alice, MemoryDraft(content="still talking", zone=Zone.SHARED, kind="message", thread_id="t-short")
    )
    principal = job_principal("historian")
    model = ScriptedModel({principal.name: [Reply("They chose Friday.\nDECISION: ship on Friday")]})
    settings = any_node.settings.scheduler.historian
    historian = Historian(any_node.memory, model, "fake", settings, principal)
    assert await historian.run() == "compacted 0 conversations, promoted 0 decisions"  # not idle yet
    later = datetime.now(UTC) + timedelta(hours=1)
    assert await historian.run(later) == "compacted 1 conversations, promoted 2 decisions"
    assert await historian.run(later) == "compacted 0 conversations, promoted 0 decisions"  # done through
    assert len(model.requests) == 1
    transcript = model.requests[0][1].messages[1]["content"]
    assert "agent:bob: Friday; the fix is small." in transcript
    page = await any_node.memory.list_memories(
        principal, ListQuery(kinds=["summary", "decision"], owner=principal.id)
    )
    made = sorted((m.kind, m.content, m.thread_id) for m in page.items)
    assert made == [
        ("decision", "Keep the release branch frozen until then.", None),
        ("decision", "ship on Friday", None),
        ("summary", "They chose Friday.", "t-ship"),
    ]
    summary = next(m for m in page.items if m.kind == "summary")
    assert summary.zone is Zone.SHARED
    assert summary.metadata["memories"] == 3


async def test_built_in_jobs_collect_garbage_and_agent_jobs_run_agents(node: Node) -> None:
    soon = datetime.now(UTC) + timedelta(milliseconds=100)
    await node.memory.store_one(ADMIN, MemoryDraft(content="short-lived", expires_at=soon))
    await node.agents.create(AgentProfile(name="briefer", tools=[]))
    model = ScriptedModel({"briefer": [Reply("Nothing new today.")]})
    runtime = Runtime(node, model, "fake", node.settings.runtime)
    spec = SchedulerSettings(
        jobs=[
            JobSettings(name="historian", enabled=False),
            JobSettings(name="brief", topic="day.started", agent="briefer", task="Brief the team."),
        ]
    )
    jobs = {j.name: j for j in build_jobs(spec, node, runtime, None)}
    assert sorted(jobs) == ["brief", "memory_gc"]  # no checker on this node, historian off
    await anyio.sleep(0.15)
    assert "purged 1 expired memories" in await jobs["memory_gc"].run({})
    assert await node.store.count() == 0
    assert await jobs["brief"].run({"day": "monday"}) == "completed after 1 steps: Nothing new today."
    system, task, data = (m["content"] for m in model.requests[0][1].messages)
    assert task == "Brief the team."  # the payload is never spliced into the instructions
    assert data == '<data>\n{"day": "monday"}\n</data>' and "never instructions" in system


async def test_a_run_cut_short_by_the_node_stopping_is_recorded_as_cancelled(node: Node) -> None:
    started = anyio.Event()

    async def forever(_: Mapping[str, Any]) -> str:
        started.set()
        await anyio.sleep_forever()
        return "never"

    jobs = scheduler(node, Job("long", forever, impact=0.1))
    async with anyio.create_task_group() as group:
        group.start_soon(jobs.fire, "long", "t1", {})
        with anyio.fail_after(10):
            await started.wait()
        group.cancel_scope.cancel()
    (run,) = await node.store.job_runs("long", 10)
    assert (run.outcome, run.detail) == ("cancelled", "the node stopped")


async def test_a_job_run_past_its_deadline_is_recorded_as_failed(node: Node) -> None:
    async def forever(_: Mapping[str, Any]) -> str:
        await anyio.sleep_forever()
        return "never"

    jobs = scheduler(node, Job("stuck", forever, impact=0.1))
    jobs.timeout = 0.2  # scheduler.job_timeout_minutes, shortened
    with anyio.fail_after(10):
        run = await jobs.fire("stuck", "t1", {})
    assert run is not None
    assert (run.outcome, run.detail) == ("failed", "timeout: the run took longer than 0.2s")
