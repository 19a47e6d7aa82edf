"""Principals and their conversation keys, on every backend: stored and found by id and token,
replaced in place, and what a deleted principal leaves behind goes in one transaction."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from noosphere.store.contract import ApiKeyRecord, MailRow, MemoryStore, PrincipalRecord

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def principal(principal_id: str, kind: str = "user", token_hash: str = "h-ann") -> PrincipalRecord:
    return PrincipalRecord(
        id=principal_id,
        kind=kind,
        name=principal_id.split(":")[-1],
        level="L1" if kind == "agent" else None,
        token_hash=token_hash,
        key_salt=b"s" * 16,
        created_at=NOW,
    )


async def test_a_principal_is_found_by_id_and_token_and_listed_by_kind(store: MemoryStore) -> None:
    ann = principal("user:ann")
    scribe = replace(principal("agent:scribe", "agent", "h-scribe"), models=None, capture=True)
    worker = replace(principal("worker:garage", "worker", "h-garage"), models=("smol", "qwen"))
    for record in (ann, scribe, worker):
        await store.put_principal(record)
    assert await store.principal("user:ann") == ann
    assert await store.principal_by_token_hash("h-garage") == worker
    assert await store.principal("user:nobody") is None
    assert await store.principal_by_token_hash("h-nobody") is None
    assert [p.id for p in await store.principals()] == ["agent:scribe", "user:ann", "worker:garage"]
    assert await store.principals("agent") == [scribe]


async def test_putting_a_principal_again_replaces_it_and_deleting_says_whether_it_was_there(
    store: MemoryStore,
) -> None:
    await store.put_principal(principal("user:ann"))
    rotated = replace(principal("user:ann", token_hash="h-new"), disabled=True)
    await store.put_principal(rotated)
    assert await store.principal_by_token_hash("h-ann") is None
    assert await store.principal_by_token_hash("h-new") == rotated
    assert await store.delete_principal("user:ann")
    assert not await store.delete_principal("user:ann")
    assert await store.principals() == []


async def test_a_conversation_key_is_recorded_once_and_can_be_forgotten(store: MemoryStore) -> None:
    assert await store.conversation_key("user:ann") is None
    assert await store.put_conversation_key("user:ann", b"salt-1", "check-1", NOW)
    assert not await store.put_conversation_key("user:ann", b"salt-2", "check-2", NOW)  # kept: the first
    assert await store.conversation_key("user:ann") == (b"salt-1", "check-1")
    assert await store.delete_conversation_key("user:ann")
    assert not await store.delete_conversation_key("user:ann")
    assert await store.conversation_key("user:ann") is None


async def test_forgetting_a_principal_takes_its_grants_mail_keys_and_conversation_key_only(
    store: MemoryStore,
) -> None:
    for who in ("ann", "bob"):
        await store.put_principal(principal(f"user:{who}", token_hash=f"h-{who}"))
        await store.put_grant(who, "Bash", None, None, "admin", NOW)
        await store.enqueue_mail([MailRow(who, f"m-{who}", 0, None, "{}")], NOW.timestamp())
        await store.subscribe(who, "deploys.*")
        await store.put_conversation_key(f"user:{who}", b"salt", "check", NOW)
        await store.put_api_key(
            ApiKeyRecord(
                id=f"key-{who}",
                user_id=f"user:{who}",
                name="laptop",
                token_hash=f"k-{who}",
                key_salt=b"s" * 16,
                rpm=None,
                tpm=None,
                budget=None,
                created_at=NOW,
            )
        )
    removed = await store.forget_principal("user:ann", "ann")
    assert removed == 5  # a grant, a message, a subscription, a key (revoked), a conversation key
    assert not await store.has_grant("ann", "Bash", None, None)
    assert await store.subscriptions("ann") == []
    assert [c.mailbox for c in await store.mail_counts(None, NOW.timestamp())] == ["bob"]
    assert [k.revoked for k in await store.api_keys("user:ann")] == [True]
    assert await store.conversation_key("user:ann") is None
    # bob keeps everything
    assert await store.has_grant("bob", "Bash", None, None)
    assert await store.subscriptions("bob") == [("bob", "deploys.*")]
    assert [k.revoked for k in await store.api_keys("user:bob")] == [False]
    assert await store.conversation_key("user:bob") == (b"salt", "check")
