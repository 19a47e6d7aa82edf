"""The memory service end to end on each backend, with the real embedder."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest

from noosphere.auth.principal import Level, PrincipalKind
from noosphere.clock import HybridLogicalClock, physical_ms
from noosphere.errors import EmbedderMismatch, InvalidRequest, PayloadTooLarge, PermissionDenied, WrongSecret
from noosphere.memory.bundle import export_lines, import_bundle
from noosphere.memory.model import ListQuery, MemoryDraft, SearchQuery, Zone
from noosphere.memory.service import MemoryService, content_hash
from noosphere.node import Node
from noosphere.testing import FakeEmbedder
from tests.service.conftest import make_agent, make_user


async def test_search_finds_by_meaning_and_by_keyword(any_node: Node) -> None:
    agent = await make_agent(any_node, "a")
    await any_node.memory.store_many(
        agent,
        [
            MemoryDraft(content="Alice prefers green tea over coffee in the morning"),
            MemoryDraft(content="The deploy failed with error E1234 on the staging cluster", kind="error"),
            MemoryDraft(content="We decided to use SQLite for the embedded default", kind="decision"),
        ],
    )
    by_meaning = await any_node.memory.search(agent, SearchQuery(query="what does Alice like to drink?"))
    assert by_meaning[0].memory.content.startswith("Alice prefers green tea")
    by_keyword = await any_node.memory.search(agent, SearchQuery(query="E1234"))
    assert by_keyword[0].memory.kind == "error"
    filtered = await any_node.memory.search(agent, SearchQuery(query="tea", kinds=["decision"]))
    assert [h.memory.kind for h in filtered] == ["decision"]


async def test_duplicates_return_the_existing_id_and_supersede_keeps_history(any_node: Node) -> None:
    agent = await make_agent(any_node, "a")
    first = await any_node.memory.store_one(agent, MemoryDraft(content="The office is on floor 2"))
    again = await any_node.memory.store_one(agent, MemoryDraft(content="The office is on floor 2"))
    assert again.id == first.id
    assert first.origin == any_node.key.id  # stamped with the node's id, which its key gives
    newer = await any_node.memory.store_one(
        agent, MemoryDraft(content="The office is on floor 3", supersedes=first.id)
    )
    assert newer.supersedes == first.id
    hits = await any_node.memory.search(agent, SearchQuery(query="which floor is the office on"))
    assert [h.memory.id for h in hits] == [newer.id]
    old = await any_node.memory.get(agent, first.id)
    assert old.invalid_at is not None
    with_history = await any_node.memory.search(
        agent, SearchQuery(query="which floor is the office on", include_invalid=True)
    )
    assert {h.memory.id for h in with_history} == {first.id, newer.id}
    with pytest.raises(InvalidRequest):
        await any_node.memory.store_one(agent, MemoryDraft(content="floor 4", supersedes=first.id))


async def test_a_failing_batch_writes_nothing(any_node: Node) -> None:
    agent = await make_agent(
        any_node,
        "a",
    )
    drafts = [MemoryDraft(content="fine"), MemoryDraft(content="not allowed", zone=Zone.FEDERATED)]
    with pytest.raises(PermissionDenied):
        await any_node.memory.store_many(agent, drafts)
    assert (await any_node.memory.list_memories(agent, ListQuery())).items == []
    with pytest.raises(PayloadTooLarge):
        await any_node.memory.store_many(agent, [MemoryDraft(content=f"m{i}") for i in range(1001)])
    with pytest.raises(InvalidRequest):
        await any_node.memory.store_one(agent, MemoryDraft(content="   "))


async def test_messages_expire_and_gc_purges_them(any_node: Node) -> None:
    agent = await make_agent(any_node, "a")
    message = await any_node.memory.store_one(agent, MemoryDraft(content="hi there", kind="message"))
    assert message.expires_at is not None
    assert message.expires_at - message.created_at == timedelta(days=30)
    soon = datetime.now(UTC) + timedelta(seconds=1)
    await any_node.memory.store_one(agent, MemoryDraft(content="brief", expires_at=soon))
    report = await any_node.memory.collect_garbage(now=soon + timedelta(seconds=1))
    assert report.expired == 1
    later = await any_node.memory.collect_garbage(now=soon + timedelta(days=31))
    assert later.expired == 1


SECRET = "correct horse battery staple"


async def test_conversations_are_ciphertext_to_everyone_but_their_owner(any_node: Node) -> None:
    _, token = await any_node.auth.create(PrincipalKind.USER, "ann")
    ann = await any_node.authenticate(token, SECRET)
    stored = await any_node.memory.store_one(
        ann, MemoryDraft(content="I told the bot about my divorce", kind="conversation")
    )
    assert stored.content == "I told the bot about my divorce"
    assert (await any_node.memory.get(ann, stored.id)).content == "I told the bot about my divorce"
    admin = await any_node.auth.by_id("admin")
    seen_by_admin = await any_node.memory.get(admin, stored.id)
    assert seen_by_admin.encrypted
    assert "divorce" not in seen_by_admin.content
    async for rows in any_node.store.scan(100):
        assert all("divorce" not in m.content for m, _ in rows)
        assert all(m.content_hash != content_hash("I told the bot about my divorce") for m, _ in rows)
    again = await any_node.memory.store_one(
        ann, MemoryDraft(content="I told the bot about my divorce", kind="conversation")
    )
    assert again.id == stored.id  # de-duplication still works for the owner
    # Without the secret, the owner's own token gets ciphertext, not an error, and cannot store one.
    keyless = await any_node.authenticate(token)
    assert "divorce" not in (await any_node.memory.get(keyless, stored.id)).content
    with pytest.raises(PermissionDenied):
        await any_node.memory.store_one(keyless, MemoryDraft(content="x", kind="conversation"))
    with pytest.raises(InvalidRequest):
        await any_node.memory.store_one(ann, MemoryDraft(content="x", kind="conversation", zone=Zone.SHARED))


async def test_the_secret_not_the_token_opens_conversations(any_node: Node) -> None:
    """A token rotation or an API key leaves a person's conversations readable with their secret;
    a wrong secret is refused, never used to seal; a reset starts over with older ones sealed."""
    _, token = await any_node.auth.create(PrincipalKind.USER, "ann")
    before = await any_node.authenticate(token, SECRET)
    sealed = await any_node.memory.store_one(before, MemoryDraft(content="old secret", kind="conversation"))
    rotated = await any_node.auth.rotate(PrincipalKind.USER, "ann")
    _, key = await any_node.auth.create_api_key("ann")
    for credential in (rotated, key):
        after = await any_node.authenticate(credential, SECRET)
        assert (await any_node.memory.get(after, sealed.id)).content == "old secret"
    with pytest.raises(WrongSecret):
        await any_node.authenticate(rotated, "not the right secret at all")
    with pytest.raises(InvalidRequest):
        await any_node.authenticate(rotated, "short")

    assert await any_node.keys.reset("user:ann")
    fresh = await any_node.authenticate(rotated, "a brand new secret, chosen again")
    await any_node.memory.store_one(fresh, MemoryDraft(content="new secret", kind="conversation"))
    await any_node.memory.store_one(fresh, MemoryDraft(content="a plain fact"))
    page = await any_node.memory.list_memories(fresh, ListQuery())  # one sealed memory breaks nothing
    contents = {m.id: (m.content, m.encrypted) for m in page.items}
    assert contents[sealed.id][0] != "old secret" and contents[sealed.id][1]
    assert {"new secret", "a plain fact"} <= {c for c, _ in contents.values()}


async def test_forget_owner_erases_everything_of_that_owner(any_node: Node) -> None:
    ann = await make_user(any_node, "ann")
    bob = await make_user(any_node, "bob")
    await any_node.memory.store_many(ann, [MemoryDraft(content=f"ann {i}") for i in range(3)])
    await any_node.memory.store_one(bob, MemoryDraft(content="bob keeps this", zone=Zone.SHARED))
    assert await any_node.memory.forget_owner(ann, ann.id) == 3
    assert (await any_node.memory.list_memories(ann, ListQuery())).items[0].content == "bob keeps this"


async def test_federated_forget_leaves_a_contentless_tombstone(any_node: Node) -> None:
    agent = await make_agent(any_node, "lead", Level.L1)
    fact = await any_node.memory.store_one(agent, MemoryDraft(content="peer fact", zone=Zone.FEDERATED))
    await any_node.memory.forget(agent, fact.id)
    (change,) = await any_node.store.changes_since(fact.seq, 10)
    assert change.tombstone
    assert change.content == ""
    assert change.hlc > fact.hlc


async def test_a_restarted_node_never_stamps_before_what_it_stamped_already(any_node: Node) -> None:
    """A node whose wall clock is behind its last stamps (a restart after it took in stamps from a
    peer whose clock runs ahead, or a clock set back) stamps after them: its deletion of a record
    must order after the record, or peers would ignore it."""
    agent = await make_agent(any_node, "lead", Level.L1)
    fact = await any_node.memory.store_one(agent, MemoryDraft(content="ahead", zone=Zone.FEDERATED))
    behind = HybridLogicalClock(lambda: physical_ms(fact.hlc) - 600_000)  # ten minutes back
    restarted = MemoryService(any_node.store, any_node.memory.embedder, any_node.memory.settings, "n", behind)
    await restarted.resume_clock()
    await restarted.forget(agent, fact.id)
    (change,) = await any_node.store.changes_since(fact.seq, 10)
    assert change.tombstone and change.hlc > fact.hlc


async def test_export_then_import_restores_everything_idempotently(any_node: Node) -> None:
    agent = await make_agent(any_node, "a")
    originals = await any_node.memory.store_many(
        agent,
        [
            MemoryDraft(content="first", tags=["x"], metadata={"k": 1}),
            MemoryDraft(content="second", zone=Zone.SHARED),
        ],
    )
    lines = [line async for line in export_lines(any_node.memory, agent)]
    assert len(lines) == 3
    for m in originals:
        await any_node.memory.forget(agent, m.id)
    report = await import_bundle(any_node.memory, agent, io.StringIO("\n".join(lines)))
    assert (report.imported, report.skipped, report.reembedded) == (2, 0, 0)
    restored = await any_node.memory.get(agent, originals[0].id)
    assert (restored.content, restored.tags, restored.metadata) == ("first", ["x"], {"k": 1})
    hits = await any_node.memory.search(agent, SearchQuery(query="second"))
    assert hits[0].memory.id == originals[1].id
    again = await import_bundle(any_node.memory, agent, io.StringIO("\n".join(lines)))
    assert (again.imported, again.skipped) == (0, 2)


async def test_import_rejects_bad_bundles_before_writing(any_node: Node) -> None:
    agent = await make_agent(any_node, "a")
    header, *_ = [line async for line in export_lines(any_node.memory, agent)]
    cases = ["", "not json", '{"format": "other"}', header + '\n{"broken": ', header + '\n{"id": "x"}']
    for text in cases:
        with pytest.raises(InvalidRequest):
            await import_bundle(any_node.memory, agent, io.StringIO(text))
    assert (await any_node.memory.list_memories(agent, ListQuery())).items == []


async def test_an_import_writes_only_to_zones_the_importer_may_write(any_node: Node) -> None:
    """An L3 agent may write only its private zone: a bundle of its own shared memory (hand-edited,
    or from an export made when it had another level) is refused whole, nothing written."""
    agent = await make_agent(any_node, "a")
    await any_node.memory.store_many(
        agent, [MemoryDraft(content="mine"), MemoryDraft(content="for everyone", zone=Zone.SHARED)]
    )
    lines = [line async for line in export_lines(any_node.memory, agent)]
    assistant = await make_agent(any_node, "helper", Level.L3)
    edited = [
        lines[0],
        *(line.replace('"owner": "agent:a"', '"owner": "agent:helper"') for line in lines[1:]),
    ]
    with pytest.raises(PermissionDenied, match=r"line \d: .*may not write to the shared zone"):
        await import_bundle(any_node.memory, assistant, io.StringIO("\n".join(edited)))
    assert (await any_node.memory.list_memories(assistant, ListQuery(owner="agent:helper"))).items == []


async def test_a_different_embedder_is_refused_until_reembed(any_node: Node) -> None:
    agent = await make_agent(any_node, "a")
    await any_node.memory.store_many(
        agent, [MemoryDraft(content="apples are red"), MemoryDraft(content="sky is blue")]
    )
    other = MemoryService(any_node.store, FakeEmbedder(dimension=32), any_node.memory.settings, "local")
    with pytest.raises(EmbedderMismatch, match="reembed"):
        await other.check_embedder()
    progress: list[tuple[int, int]] = []
    assert await other.reembed(lambda done, total: progress.append((done, total))) == 2
    assert progress[-1] == (2, 2)
    await other.check_embedder()
    hits = await other.search(agent, SearchQuery(query="apples red"))
    assert hits[0].memory.content == "apples are red"
    assert hits[0].memory.embed_model == "fake-bow"
