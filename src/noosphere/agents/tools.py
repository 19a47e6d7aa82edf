"""Tools an agent can call: what each one is (for the model and for policy) and how it runs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from noosphere.agents.profile import AgentProfile
from noosphere.auth.principal import Principal
from noosphere.governance.policy import ToolCall


@dataclass(frozen=True)
class ToolContext:
    """Who is calling, in which run; tools act as ``principal`` (its zones, its mailbox)."""

    agent: AgentProfile
    principal: Principal
    session: str
    run_id: str
    delegates: tuple[str, ...] = ()  # agents of lower levels it may delegate to
    payer: Principal | None = None  # who the run's model calls are billed to (default: the agent)


Runner = Callable[[ToolContext, dict[str, Any]], Awaitable[Any]]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: Mapping[str, Any]  # JSON Schema of the arguments
    run: Runner
    writes: bool = True  # has side effects: runs alone, in order; read-only tools run concurrently
    impact: float = 0.5  # estimated, 0 (harmless) .. 1 (irreversible, external)
    subject: str | None = None  # the argument policy rules match their pattern against
    source: str = "builtin"  # builtin, or the MCP server it comes from
    schema_for: Callable[[ToolContext], Mapping[str, Any]] | None = field(default=None, compare=False)

    def call(self, args: Mapping[str, Any]) -> ToolCall:
        """What policy sees of a call with ``args``."""
        value = args.get(self.subject) if self.subject else None
        return ToolCall(self.name, None if value is None else str(value), self.impact, self.writes)

    def openai(self, ctx: ToolContext) -> dict[str, Any]:
        """The tool as the model sees it (OpenAI function format); some narrow their schema to the
        caller (``delegate`` lists only agents it may delegate to)."""
        parameters = self.schema_for(ctx) if self.schema_for else self.parameters
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": dict(parameters)},
        }


def schema(required: list[str] | None = None, **properties: Mapping[str, Any]) -> dict[str, Any]:
    """An object JSON Schema from its properties; every one required unless ``required`` says."""
    return {
        "type": "object",
        "properties": {k: dict(v) for k, v in properties.items()},
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }


__all__ = ["Tool", "ToolContext", "schema"]
