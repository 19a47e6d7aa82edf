"""API keys, usage records and the ledger, on every backend."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from noosphere.errors import InvalidRequest
from noosphere.store.contract import ApiKeyRecord, MemoryStore, UsageRecord

NOW = datetime.now(UTC)


def key(key_id: str, user: str = "user:ann", token_hash: str = "h1") -> ApiKeyRecord:
    return ApiKeyRecord(
        id=key_id,
        user_id=user,
        name="laptop",
        token_hash=token_hash,
        key_salt=b"s" * 16,
        rpm=60,
        tpm=None,
        budget=1000.0,
        created_at=NOW,
    )


def usage(
    request_id: str, key_id: str | None, worker: str, credits: float, at: datetime = NOW
) -> UsageRecord:
    return UsageRecord(
        id=request_id,
        at=at,
        principal="user:ann",
        key_id=key_id,
        model="smol",
        worker=worker,
        prompt_tokens=10,
        completion_tokens=5,
        reported_prompt=12,
        reported_completion=5,
        credits=credits,
        status="ok",
    )


async def test_api_keys_are_found_by_hash_listed_and_revoked(store: MemoryStore) -> None:
    await store.put_api_key(key("key_a", token_hash="ha"))
    await store.put_api_key(key("key_b", user="user:bob", token_hash="hb"))
    found = await store.api_key_by_token_hash("ha")
    assert found is not None
    assert (found.id, found.rpm, found.tpm, found.budget) == ("key_a", 60, None, 1000.0)
    assert [k.id for k in await store.api_keys("user:bob")] == ["key_b"]
    assert len(await store.api_keys()) == 2
    assert await store.revoke_api_key("key_a")
    assert not await store.revoke_api_key("key_a")
    revoked = await store.api_key_by_token_hash("ha")
    assert revoked is not None
    assert revoked.revoked


async def test_each_request_moves_credits_and_the_books_balance(store: MemoryStore) -> None:
    await store.record_usage(
        [(usage("r1", "key_a", "worker:gpu", 20.0), [("key:key_a", -20.0), ("worker:gpu", 20.0)])]
    )
    await store.record_usage(
        [(usage("r2", "key_a", "local:smol", 5.0), [("key:key_a", -5.0), ("local:smol", 5.0)])]
    )
    assert await store.balance("key:key_a") == pytest.approx(-25.0)
    assert await store.balance("worker:gpu") == pytest.approx(20.0)
    assert await store.balance("nobody") == 0.0
    by_worker = {s.group: s for s in await store.usage_summary("worker", None)}
    assert by_worker["worker:gpu"].credits == pytest.approx(20.0)
    assert by_worker["worker:gpu"].requests == 1
    (by_key,) = await store.usage_summary("key_id", None)
    assert (by_key.group, by_key.requests, by_key.prompt_tokens, by_key.completion_tokens) == (
        "key_a",
        2,
        20,
        10,
    )
    assert await store.usage_summary("model", NOW + timedelta(hours=1)) == []


async def test_unbalanced_entries_are_refused_and_nothing_is_written(store: MemoryStore) -> None:
    with pytest.raises(ValueError, match="sum to zero"):
        await store.record_usage(
            [
                (usage("r0", None, "w", 1.0), [("principal:x", -1.0), ("w", 1.0)]),
                (usage("r1", None, "w", 3.0), [("principal:x", -3.0), ("w", 2.0)]),
            ]
        )
    assert await store.usage_summary("principal", None) == []


async def test_usage_groups_are_whitelisted(store: MemoryStore) -> None:
    with pytest.raises(InvalidRequest):
        await store.usage_summary("credits; DROP TABLE usage_requests", None)


async def test_running_balances_follow_the_ledger_per_budget_period(store: MemoryStore) -> None:
    """Admission reads one balance row per account and period; the rows must always equal the sum
    of the entries they stand for."""
    day = datetime(2026, 11, 30, 23, 59, tzinfo=UTC)
    next_day = day + timedelta(minutes=2)  # also the next month
    await store.put_api_key(replace(key("key_p", token_hash="hp"), budget_period="daily", capture=True))
    found = await store.api_key_by_token_hash("hp")
    assert found is not None and (found.budget_period, found.capture) == ("daily", True)
    await store.record_usage(
        [
            (usage("r1", "key_p", "worker:w", 10.0, day), [("key:key_p", -10.0), ("worker:w", 10.0)]),
            (usage("r2", "key_p", "worker:w", 4.0, day), [("key:key_p", -4.0), ("worker:w", 4.0)]),
        ]
    )
    await store.record_usage(
        [(usage("r3", "key_p", "worker:w", 1.5, next_day), [("key:key_p", -1.5), ("worker:w", 1.5)])]
    )
    assert await store.balance("key:key_p") == -15.5
    assert await store.balance("key:key_p", "day:2026-11-30") == -14.0
    assert await store.balance("key:key_p", "day:2026-12-01") == -1.5
    assert await store.balance("key:key_p", "month:2026-11") == -14.0
    assert await store.balance("key:key_p", "month:2026-12") == -1.5
    assert await store.balance("worker:w", "total") == 15.5
    assert await store.balance("nobody") == 0.0
    with pytest.raises(ValueError, match="sum to zero"):
        await store.record_usage([(usage("r4", None, "worker:w", 1.0, day), [("key:key_p", -1.0)])])
    assert await store.balance("key:key_p") == -15.5  # nothing of a refused batch counts
