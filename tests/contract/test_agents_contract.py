"""Agent profiles and delegated tasks, on every store backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from noosphere.store.contract import MemoryStore, TaskRecord

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def delegated(
    task_id: str, delegator: str = "planner", assignee: str = "coder", at: datetime = NOW
) -> TaskRecord:
    return TaskRecord(
        id=task_id,
        delegator=delegator,
        assignee=assignee,
        task="fix the flaky test",
        status="delegated",
        created_at=at,
        updated_at=at,
        session="s1",
    )


async def test_profiles_are_replaced_listed_by_name_and_deleted(store: MemoryStore) -> None:
    await store.put_agent_profile("zed", '{"name": "zed"}', NOW)
    await store.put_agent_profile("amy", '{"name": "amy", "v": 1}', NOW)
    await store.put_agent_profile("amy", '{"name": "amy", "v": 2}', NOW + timedelta(seconds=1))
    assert await store.agent_profiles() == ['{"name": "amy", "v": 2}', '{"name": "zed"}']
    assert await store.agent_profiles("zed") == ['{"name": "zed"}']
    assert await store.delete_agent_profile("zed") is True
    assert await store.delete_agent_profile("zed") is False
    assert await store.agent_profiles("zed") == []


async def test_a_task_moves_only_from_the_states_named(store: MemoryStore) -> None:
    await store.put_task(delegated("t1"))
    assert await store.task("t1") == delegated("t1")
    later = NOW + timedelta(minutes=1)
    assert await store.move_task("t1", ["delegated"], "accepted", None, later) is True
    assert await store.move_task("t1", ["delegated"], "rejected", "busy", later) is False
    assert await store.move_task("t1", ["accepted"], "completed", "done: 3 files", later) is True
    got = await store.task("t1")
    assert got is not None
    assert (got.status, got.result, got.updated_at) == ("completed", "done: 3 files", later)
    assert await store.task("nope") is None


async def test_tasks_are_listed_newest_first_for_either_side(store: MemoryStore) -> None:
    await store.put_task(delegated("t1", "planner", "coder", NOW))
    await store.put_task(delegated("t2", "coder", "tester", NOW + timedelta(seconds=1)))
    await store.put_task(delegated("t3", "planner", "writer", NOW + timedelta(seconds=2)))
    assert [t.id for t in await store.tasks(None, 10)] == ["t3", "t2", "t1"]
    assert [t.id for t in await store.tasks("coder", 10)] == ["t2", "t1"]
    assert [t.id for t in await store.tasks("planner", 1)] == ["t3"]


async def test_an_accepted_task_holds_a_lease_and_a_lapsed_one_is_reclaimed_once(store: MemoryStore) -> None:
    await store.put_task(delegated("t9"))
    assert await store.lease_task("t9", NOW) is False  # only accepted tasks hold a lease
    assert await store.move_task("t9", ["delegated"], "accepted", None, NOW)
    assert await store.lease_task("t9", NOW + timedelta(seconds=60))
    assert await store.lapsed_tasks(NOW + timedelta(seconds=30), 10) == []  # still held
    later = NOW + timedelta(seconds=61)
    (lapsed,) = await store.lapsed_tasks(later, 10)
    assert (lapsed.id, lapsed.lease_until, lapsed.attempts) == ("t9", NOW + timedelta(seconds=60), 0)
    assert await store.reclaim_task("t9", later, "delegated", None, later)
    assert await store.reclaim_task("t9", later, "delegated", None, later) is False  # once
    record = await store.task("t9")
    assert record is not None
    assert (record.status, record.attempts, record.lease_until) == ("delegated", 1, None)
    assert await store.lapsed_tasks(later, 10) == []


async def test_open_tasks_are_the_unsettled_ones_oldest_first(store: MemoryStore) -> None:
    await store.put_task(delegated("t1", "planner", "coder", NOW))
    await store.put_task(delegated("t2", "peer:node-a", "coder", NOW + timedelta(seconds=1)))
    await store.put_task(delegated("t3", "peer:node-a", "tester", NOW + timedelta(seconds=2)))
    await store.put_task(delegated("t4", "peer:node-a", "writer", NOW + timedelta(seconds=3)))
    await store.move_task("t3", ["delegated"], "accepted", None, NOW)
    await store.move_task("t4", ["delegated"], "rejected", "busy", NOW)
    assert [t.id for t in await store.open_tasks(None, 10)] == ["t1", "t2", "t3"]
    assert [t.id for t in await store.open_tasks("peer:node-a", 10)] == ["t2", "t3"]
    assert [t.id for t in await store.open_tasks("peer:node-a", 1)] == ["t2"]
    assert await store.open_tasks("nobody", 10) == []
    await store.put_task(delegated("t5", "planner", "coder@node-garage", NOW + timedelta(seconds=4)))
    assert [t.id for t in await store.open_tasks(None, 10, on_peers=True)] == ["t5"]
