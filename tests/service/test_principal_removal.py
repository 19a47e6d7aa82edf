"""Deleting a principal deletes what it owned: one recreated later under the same name inherits
no private memory, no standing approval, no mail and no API key."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from noosphere.auth.principal import PrincipalKind
from noosphere.bus import Envelope, Kind
from noosphere.errors import NotFound, Unauthenticated
from noosphere.governance.policy import ToolCall
from noosphere.memory.model import ListQuery, MemoryDraft, Zone
from noosphere.node import Node
from tests.service.conftest import make_agent, make_user

CALL = ToolCall("Bash", "git push", impact=0.8)


async def test_a_recreated_agent_inherits_nothing_of_the_deleted_one(any_node: Node) -> None:
    old = await make_agent(any_node, "bob")
    await any_node.memory.store_one(old, MemoryDraft(content="bob's private plan", zone=Zone.PRIVATE))
    await any_node.store.put_grant("bob", CALL.tool, CALL.subject, None, "admin", datetime.now(UTC))
    await any_node.bus.send(Envelope(Kind.REQUEST, "admin", {"q": "for the old bob"}, recipient="bob"))
    await any_node.bus.subscribe("bob", "deploys.>")
    assert await any_node.checkpoints.granted("bob", CALL, None)

    removed = await any_node.remove(PrincipalKind.AGENT, "bob")
    assert removed >= 4

    new = await make_agent(any_node, "bob")
    assert (await any_node.memory.list_memories(new, ListQuery())).items == []
    assert not await any_node.checkpoints.granted("bob", CALL, None)
    assert await any_node.bus.receive("bob", 10, 0) == []
    assert await any_node.store.subscriptions("bob") == []
    entries = [e.entry for e in await any_node.store.audit_entries()]
    assert any('"event":"deleted"' in e and '"principal":"agent:bob"' in e for e in entries)


async def test_a_deleted_users_keys_stop_working_and_do_not_come_back(any_node: Node) -> None:
    await make_user(any_node, "ann")
    _, key = await any_node.auth.create_api_key("ann")
    assert (await any_node.authenticate(key)).id == "user:ann"
    await any_node.remove(PrincipalKind.USER, "ann")
    await make_user(any_node, "ann")
    with pytest.raises(Unauthenticated):
        await any_node.authenticate(key)
    assert all(k.revoked for k in await any_node.auth.api_keys("ann"))


async def test_removing_an_unknown_principal_is_not_found(any_node: Node) -> None:
    with pytest.raises(NotFound):
        await any_node.remove(PrincipalKind.AGENT, "ghost")
