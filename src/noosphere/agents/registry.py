"""The agents of a node: a profile and a principal (its token) for each, kept together."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from pydantic import ValidationError

from noosphere.agents.profile import AgentProfile
from noosphere.auth.principal import Level, PrincipalKind, principal_id
from noosphere.auth.tokens import TokenAuthority
from noosphere.errors import NotFound
from noosphere.store.contract import MemoryStore

logger = logging.getLogger(__name__)


class AgentRegistry:
    def __init__(self, store: MemoryStore, auth: TokenAuthority) -> None:
        self.store = store
        self.auth = auth

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
        found = await self._profiles(name)
        if not found:
            raise NotFound(f"no agent named {name!r}")
        return found[0]

    async def every(self) -> list[AgentProfile]:
        return await self._profiles(None)

    async def deciders(self, requester: str) -> frozenset[str]:
        """Users who may decide checkpoints ``requester`` (an agent's mailbox) asked for."""
        found = await self._profiles(requester)
        return found[0].deciders() if found else frozenset()

    async def delete(self, name: str) -> None:
        await self.auth.delete(PrincipalKind.AGENT, name)
        await self.store.delete_agent_profile(name)

    async def _put(self, profile: AgentProfile) -> None:
        await self.store.put_agent_profile(profile.name, profile.model_dump_json(), datetime.now(UTC))

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
        out = []
        for record in await self.auth.list_principals(PrincipalKind.AGENT):
            if name is not None and record.name != name:
                continue
            level = Level(record.level) if record.level else Level.L2
            out.append(stored.get(record.name) or AgentProfile(name=record.name, level=level))
        return out


__all__ = ["AgentRegistry"]
