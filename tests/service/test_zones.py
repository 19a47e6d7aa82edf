"""Zones are enforced from the caller's identity: adversarial attempts to read or touch another
agent's private memories must all fail."""

from __future__ import annotations

import pytest

from noosphere.auth.principal import Level
from noosphere.errors import NotFound, PermissionDenied, Unauthenticated
from noosphere.memory.model import ListQuery, MemoryDraft, SearchQuery, Zone
from noosphere.node import Node
from tests.service.conftest import make_agent

SECRET = "The launch code for project Nimbus is 7741"


async def test_an_agent_never_sees_another_agents_private_memories(any_node: Node) -> None:
    alice = await make_agent(any_node, "alice")
    mallory = await make_agent(any_node, "mallory")
    secret = await any_node.memory.store_one(alice, MemoryDraft(content=SECRET, zone=Zone.PRIVATE))
    await any_node.memory.store_one(alice, MemoryDraft(content="Nimbus launches in spring", zone=Zone.SHARED))
    svc = any_node.memory

    attempts = [
        SearchQuery(query="launch code Nimbus"),
        SearchQuery(query="launch code Nimbus", owner=alice.id),
        SearchQuery(query="launch code Nimbus", owner=alice.id, zones=[Zone.PRIVATE]),
        SearchQuery(query="launch code Nimbus", zones=[Zone.PRIVATE, Zone.SHARED, Zone.FEDERATED]),
        SearchQuery(query="7741", include_invalid=True),
        SearchQuery(query='" OR 1=1 --'),
        SearchQuery(query="Nimbus' OR owner='agent:alice"),
        SearchQuery(query="code* OR NEAR(launch code) ^ -"),
        SearchQuery(query="launch", metadata={"owner": "agent:alice"}),
    ]
    for query in attempts:
        hits = await svc.search(mallory, query)
        assert all(h.memory.id != secret.id for h in hits), query
        assert all(h.memory.zone is not Zone.PRIVATE for h in hits), query

    listed = await svc.list_memories(mallory, ListQuery(owner=alice.id, zones=[Zone.PRIVATE]))
    assert listed.items == []
    with pytest.raises(NotFound):
        await svc.get(mallory, secret.id)
    with pytest.raises(NotFound):
        await svc.forget(mallory, secret.id)
    with pytest.raises(NotFound):
        await svc.store_one(mallory, MemoryDraft(content="hijack", supersedes=secret.id))
    with pytest.raises(PermissionDenied):
        await svc.forget_owner(mallory, alice.id)
    # The owner still sees it, unchanged.
    assert (await svc.get(alice, secret.id)).content == SECRET
    hits = await svc.search(alice, SearchQuery(query="launch code Nimbus"))
    assert hits[0].memory.id == secret.id


async def test_the_owner_cannot_be_forged_through_a_draft(any_node: Node) -> None:
    mallory = await make_agent(any_node, "mallory")
    with pytest.raises(ValueError, match="owner"):
        MemoryDraft.model_validate({"content": "x", "owner": "agent:alice"})
    stored = await any_node.memory.store_one(mallory, MemoryDraft(content="mine"))
    assert stored.owner == mallory.id


async def test_shared_memories_cannot_be_forgotten_by_others(any_node: Node) -> None:
    alice = await make_agent(any_node, "alice")
    bob = await make_agent(any_node, "bob")
    note = await any_node.memory.store_one(alice, MemoryDraft(content="shared note", zone=Zone.SHARED))
    assert (await any_node.memory.get(bob, note.id)).content == "shared note"
    with pytest.raises(PermissionDenied):
        await any_node.memory.forget(bob, note.id)


@pytest.mark.parametrize(
    ("level", "zone", "allowed"),
    [
        (Level.L0, Zone.FEDERATED, True),
        (Level.L1, Zone.FEDERATED, True),
        (Level.L2, Zone.SHARED, True),
        (Level.L2, Zone.FEDERATED, False),
        (Level.L3, Zone.PRIVATE, True),
        (Level.L3, Zone.SHARED, False),
    ],
)
async def test_levels_limit_where_an_agent_may_write(
    any_node: Node, level: Level, zone: Zone, allowed: bool
) -> None:
    agent = await make_agent(any_node, f"agent-{level.value.lower()}", level)
    draft = MemoryDraft(content=f"note from {level}", zone=zone)
    if allowed:
        assert (await any_node.memory.store_one(agent, draft)).zone is zone
    else:
        with pytest.raises(PermissionDenied):
            await any_node.memory.store_one(agent, draft)


async def test_an_admin_token_from_the_environment_replaces_the_stored_one(
    any_node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = any_node.settings.data_dir
    monkeypatch.setenv("NOOSPHERE_ADMIN_TOKEN", "ns_chosen-by-the-operator")
    assert await any_node.auth.ensure_admin(None, data_dir) is None  # nothing new to print
    admin = await any_node.authenticate("ns_chosen-by-the-operator")
    assert admin.is_admin
    with pytest.raises(Unauthenticated):
        await any_node.authenticate((data_dir / "admin-token").read_text().strip())
    assert await any_node.auth.ensure_admin("ns_from-config", data_dir) is None
    assert (await any_node.authenticate("ns_from-config")).is_admin
