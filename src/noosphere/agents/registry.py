"""The agents of a node: a profile and a principal (its token) for each, kept together."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from pydantic import ValidationError

from noosphere.agents.profile import AgentProfile
from noosphere.auth.principal import Level, PrincipalKind, principal_id
from noosphere.auth.tokens import TokenAuthority
from noosphere.errors import NotFound
from noosphere.expiring import Expiring
from noosphere.store.contract import MemoryStore

logger = logging.getLogger(__name__)


class AgentRegistry:
    def __init__(self, store: MemoryStore, auth: TokenAuthority, cache_seconds: float = 0.0) -> None:
        self.store = store
        self.auth = auth
        # An agent's profile is read on every call it makes from outside the node (the governance
        # gate needs its level and rules): kept ``auth.cache_seconds``, as tokens are, and dropped
        # at once when this process changes it; another process's change applies within that time.
        self._cache: Expiring[str, AgentProfile] = Expiring(cache_seconds)

    async def create(self, profile: AgentProfile) -> tuple[AgentProfile, str]:
        """A new agent and its token (returned once); ``Conflict`` if the name is taken."""
        _, token = await self.auth.create(PrincipalKind.AGENT, profile.name, profile.level)
        await self._put(profile)
        return profile, token

    async def declare(self, profile: AgentProfile) -> None:
        """Make the agent exist with this profile (config-declared agents, on every start)."""
        record = await self.store.principal(principal_id(PrincipalKind.AGENT, profile.name))
        if record is None:
            await self.auth.create(PrincipalKind.AGENT, profile.name, profile.level)
        elif record.level != profile.level.value:
            await self.auth.set_level(profile.name, profile.level)
        await self._put(profile)

    async def get(self, name: str) -> AgentProfile:
        found = await self._one(name)
        if found is None:
            raise NotFound(f"no agent named {name!r}")
        return found

    async def find(self, name: str) -> AgentProfile | None:
        """Agent ``name``'s profile, or None if there is none."""
        return await self._one(name)

    async def every(self) -> list[AgentProfile]:
        return await self._profiles(None)

    async def deciders(self, requester: str) -> frozenset[str]:
        """Users who may decide checkpoints ``requester`` (an agent's mailbox) asked for."""
        found = await self._one(requester)
        return found.deciders() if found else frozenset()

    async def delete(self, name: str) -> None:
        self._cache.clear()
        await self.auth.delete(PrincipalKind.AGENT, name)
        await self.store.delete_agent_profile(name)
        self._cache.clear()

    async def _put(self, profile: AgentProfile) -> None:
        self._cache.clear()
        await self.store.put_agent_profile(profile.name, profile.model_dump_json(), datetime.now(UTC))
        self._cache.clear()

    async def _one(self, name: str) -> AgentProfile | None:
        cached = self._cache.get(name)
        if cached is not None:
            return cached
        found = await self._profiles(name)
        if not found:
            return None
        self._cache.put(name, found[0])
        return found[0]

    async def _profiles(self, name: str | None) -> list[AgentProfile]:
        """Stored profiles; an agent created before profiles existed gets a default one."""
        stored: dict[str, AgentProfile] = {}
        for raw in await self.store.agent_profiles(name):
            try:
                profile = AgentProfile.model_validate_json(raw)
            except ValidationError as exc:  # stored before a check existed: run with the defaults
                logger.warning("a stored agent profile no longer validates (%s); using defaults", exc)
                continue
            stored[profile.name] = profile
        if name is None:
            records = await self.auth.list_principals(PrincipalKind.AGENT)
        else:
            one = await self.store.principal(principal_id(PrincipalKind.AGENT, name))
            records = [] if one is None else [one]
        out = []
        for record in records:
            level = Level(record.level) if record.level else Level.L2
            out.append(stored.get(record.name) or AgentProfile(name=record.name, level=level))
        return out


__all__ = ["AgentRegistry"]
