"""Approvals and standing grants, on every store backend."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import anyio

from noosphere.store.contract import ApprovalRecord, MemoryStore

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def pending(approval_id: str, minutes: float = 60, created: datetime = NOW) -> ApprovalRecord:
    return ApprovalRecord(
        id=approval_id,
        requester="coder",
        level="L2",
        tool="Bash",
        subject="git push",
        args_digest="ab" * 32,
        impact=0.5,
        reason="rule ask Bash(git push:*)",
        session="s1",
        status="pending",
        created_at=created,
        expires_at=created + timedelta(minutes=minutes),
    )


async def test_an_approval_is_stored_and_read_back_exactly(store: MemoryStore) -> None:
    record = pending("a1")
    await store.put_approval(record)
    assert await store.approval("a1") == record
    assert await store.approval("nope") is None


async def test_a_decision_lands_once_and_only_on_a_pending_approval(store: MemoryStore) -> None:
    await store.put_approval(pending("a1"))
    later = NOW + timedelta(minutes=5)
    assert await store.settle_approval("a1", "approved", "user:ann", later, "session", "fine") is True
    assert await store.settle_approval("a1", "rejected", "user:bob", later, None, None) is False
    got = await store.approval("a1")
    assert got is not None
    assert (got.status, got.decided_by, got.decided_at, got.scope, got.note) == (
        "approved",
        "user:ann",
        later,
        "session",
        "fine",
    )


async def test_racing_deciders_get_exactly_one_win(store: MemoryStore) -> None:
    await store.put_approval(pending("a1"))
    wins: list[bool] = []

    async def decide(who: str) -> None:
        wins.append(await store.settle_approval("a1", "approved", who, NOW, "once", None))

    async with anyio.create_task_group() as group:
        for i in range(8):
            group.start_soon(decide, f"user:{i}")
    assert sorted(wins) == [False] * 7 + [True]


async def test_listing_is_newest_first_and_filters_by_status(store: MemoryStore) -> None:
    for i in range(3):
        await store.put_approval(pending(f"a{i}", created=NOW + timedelta(minutes=i)))
    await store.settle_approval("a1", "rejected", "admin", NOW, None, None)
    assert [a.id for a in await store.approvals(None, 10)] == ["a2", "a1", "a0"]
    assert [a.id for a in await store.approvals("pending", 10)] == ["a2", "a0"]
    assert [a.id for a in await store.approvals(None, 1)] == ["a2"]


async def test_due_approvals_are_the_pending_ones_past_their_expiry(store: MemoryStore) -> None:
    await store.put_approval(pending("soon", minutes=1))
    await store.put_approval(pending("later", minutes=90))
    await store.put_approval(replace(pending("done", minutes=1), status="approved"))
    assert [a.id for a in await store.due_approvals(NOW + timedelta(minutes=2))] == ["soon"]
    assert await store.due_approvals(NOW) == []


async def test_grants_cover_their_session_or_always(store: MemoryStore) -> None:
    await store.put_grant("coder", "Bash", "git push", "s1", "user:ann", NOW)
    assert await store.has_grant("coder", "Bash", "git push", "s1") is True
    assert await store.has_grant("coder", "Bash", "git push", "s2") is False
    assert await store.has_grant("coder", "Bash", "git push", None) is False
    assert await store.has_grant("coder", "Bash", "git pull", "s1") is False
    await store.put_grant("coder", "FileEdit", None, None, "user:ann", NOW)
    assert await store.has_grant("coder", "FileEdit", None, "any-session") is True
    assert await store.has_grant("coder", "FileEdit", None, None) is True
    assert await store.has_grant("other", "FileEdit", None, None) is False
    await store.put_grant("coder", "Bash", "git push", "s1", "user:bob", NOW)  # again: no error
