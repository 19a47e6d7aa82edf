"""The node remembers verified tokens briefly: its own credential changes apply at once; changes
made by another process (the CLI) within ``auth.cache_seconds``."""

from __future__ import annotations

import time

import pytest

from noosphere.auth.principal import Level, PrincipalKind
from noosphere.auth.tokens import TokenAuthority
from noosphere.errors import Unauthenticated
from noosphere.node import Node


async def test_changes_through_the_node_apply_at_once(any_node: Node) -> None:
    _, token = await any_node.auth.create(PrincipalKind.AGENT, "cached", Level.L2)
    assert (await any_node.authenticate(token)).id == "agent:cached"
    new = await any_node.auth.rotate(PrincipalKind.AGENT, "cached")
    with pytest.raises(Unauthenticated):
        await any_node.authenticate(token)
    assert (await any_node.authenticate(new)).id == "agent:cached"
    await any_node.auth.delete(PrincipalKind.AGENT, "cached")
    with pytest.raises(Unauthenticated):
        await any_node.authenticate(new)


async def test_changes_from_another_process_apply_within_the_cache_time(any_node: Node) -> None:
    node_side = TokenAuthority(any_node.store, cache_seconds=0.3)
    other_process = TokenAuthority(any_node.store)
    _, token = await other_process.create(PrincipalKind.USER, "remote")
    assert (await node_side.authenticate(token)).id == "user:remote"
    await other_process.delete(PrincipalKind.USER, "remote")
    assert (await node_side.authenticate(token)).id == "user:remote"  # still remembered
    deadline = time.monotonic() + 5
    while True:
        try:
            await node_side.authenticate(token)
        except Unauthenticated:
            break
        assert time.monotonic() < deadline, "a deleted principal kept working past the cache time"


async def test_a_zero_cache_time_checks_the_store_every_time(any_node: Node) -> None:
    node_side = TokenAuthority(any_node.store, cache_seconds=0)
    other_process = TokenAuthority(any_node.store)
    _, token = await other_process.create(PrincipalKind.USER, "uncached")
    await node_side.authenticate(token)
    await other_process.delete(PrincipalKind.USER, "uncached")
    with pytest.raises(Unauthenticated):
        await node_side.authenticate(token)
