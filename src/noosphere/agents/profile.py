"""What an agent is: its level, capabilities, model, system prompt ("soul"), the tools it may use,
the memory zones it works in, its own policy rules and its budgets."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from noosphere.auth.principal import Level
from noosphere.errors import InvalidRequest
from noosphere.governance.policy import Effect as PolicyEffect
from noosphere.governance.policy import parse_rule
from noosphere.memory.model import Zone

Effect = Literal["allow", "ask", "deny"]


USER_NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
REPLY_STEP = "reply"  # a plan step that offers no tools: the model answers in text


class AgentProfile(BaseModel):
    """Declared in the config file (``agents:``) or created with ``noosphere agent create``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$", description="Agent name (letters, digits, `-`, `_`)."
    )
    level: Level = Field(Level.L2, description="L0 system, L1 orchestrator, L2 specialist, L3 assistant.")
    owner: str | None = Field(
        None,
        pattern=USER_NAME,
        description="The user whose agent this is: they may run it and decide its human checkpoints "
        "(default: only the admin may).",
    )
    approvers: list[Annotated[str, Field(pattern=USER_NAME)]] = Field(
        default_factory=list,
        max_length=64,
        description="Users who may decide this agent's human checkpoints, besides its owner and the admin.",
    )
    capabilities: list[str] = Field(
        default_factory=list,
        description="What it can do (e.g. `python`, `review`); delegation matches on these.",
    )
    model: str | None = Field(
        None, description="Model it thinks with (any the pool serves); default: the node's."
    )
    soul: str = Field("", max_length=20_000, description="System prompt: who it is and how it works.")
    tools: list[str] = Field(
        default_factory=lambda: ["*"], description="Tool names it may use (globs, e.g. `memory_*`)."
    )
    zones: list[Zone] = Field(
        default_factory=lambda: [Zone.PRIVATE, Zone.SHARED], description="Memory zones it reads and writes."
    )
    rules: dict[Effect, list[str]] = Field(
        default_factory=dict, description="Policy rules for this agent alone (`Tool(pattern)` grammar)."
    )
    plan: list[str] = Field(
        default_factory=list,
        description="Tools it must call on its first steps, in order (for small models that do not "
        f"choose tools reliably); a `{REPLY_STEP}` step answers in text without tools. After the plan "
        "it chooses freely.",
    )
    serve: bool = Field(
        False,
        description="The node runs this agent: it takes delegated tasks from its mailbox. Leave false for "
        "agents that run elsewhere (an MCP client) and read their own mailbox.",
    )
    temperature: float | None = Field(
        None,
        ge=0,
        le=2,
        strict=True,
        description="Sampling temperature; 0 answers alike every time. Default: the model's.",
    )
    max_steps: int = Field(8, ge=1, le=200, description="Most model calls in one run.")
    max_tokens: int = Field(8192, ge=64, description="Most tokens (prompt + completion) in one run.")

    @field_validator("capabilities")
    @classmethod
    def _capabilities(cls, value: list[str]) -> list[str]:
        return sorted({c.strip().lower() for c in value if c.strip()})

    @field_validator("rules")
    @classmethod
    def _rules(cls, value: dict[Effect, list[str]]) -> dict[Effect, list[str]]:
        """Rules compile when stored, so a malformed one never reaches a run."""
        for effect, rules in value.items():
            for rule in rules:
                try:
                    parse_rule(rule, PolicyEffect(effect), "agent")
                except InvalidRequest as exc:
                    raise ValueError(exc.message) from None
        return value

    def deciders(self) -> frozenset[str]:
        """Principal ids of the users who may decide this agent's checkpoints (the admin always may)."""
        users = {*self.approvers, *([self.owner] if self.owner else [])}
        return frozenset(f"user:{name}" for name in users)

    def may_use(self, tool: str) -> bool:
        return any(fnmatchcase(tool, pattern) for pattern in self.tools)

    def can(self, needed: list[str]) -> bool:
        """Whether it has every capability in ``needed``."""
        return set(c.lower() for c in needed) <= set(self.capabilities)


__all__ = ["REPLY_STEP", "AgentProfile"]
