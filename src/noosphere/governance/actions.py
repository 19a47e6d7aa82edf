"""What callers outside the node do — the MCP tools, the REST routes and CLI commands that do the
same — passing the gate agents' own tool calls pass: policy, a person's approval where a rule
asks, and audit. Whoever calls, a rule such as ``ask: ["memory_forget(*)"]`` applies.

Each action has a name (the MCP tool's; rules match it), an estimated impact, whether it writes,
and the argument rules match their pattern against. People act on their own authority: node rules
bind them, impact estimates do not (``policy.decide``). An agent's token used from outside is
held to exactly what the agent would be held to inside.

An outside caller is not held while a person decides: an "ask" answers ``approval_required``
with the approval's id (after ``governance.caller_wait_seconds``), and the caller repeats the
same call once the approval is decided (``Gate.admit``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio

from noosphere.agents.registry import AgentRegistry
from noosphere.auth.principal import Level, Principal, PrincipalKind
from noosphere.config import GovernanceSettings
from noosphere.errors import NoosphereError
from noosphere.governance.gate import Clearance, Gate
from noosphere.governance.policy import Caller, Policy, ToolCall

T = TypeVar("T")


@dataclass(frozen=True)
class Action:
    name: str
    impact: float  # estimated, 0 (harmless) .. 1 (irreversible, external)
    writes: bool = True
    subject: tuple[str, ...] = ()  # the argument rules match their pattern against (first given)
    askable: bool = True  # False: a rule that asks refuses it instead (deciding approvals)

    def call(self, args: Mapping[str, Any]) -> ToolCall:
        value = next((args[k] for k in self.subject if args.get(k) is not None), None)
        return ToolCall(self.name, None if value is None else str(value), self.impact, self.writes)


ACTIONS: Mapping[str, Action] = {
    a.name: a
    for a in (
        Action("memory_store", 0.2, subject=("zone",)),
        Action("memory_store_many", 0.2),
        Action("memory_import", 0.2),
        Action("memory_search", 0.0, writes=False, subject=("query",)),
        Action("memory_get", 0.0, writes=False, subject=("id",)),
        Action("memory_list", 0.0, writes=False),
        Action("memory_export", 0.0, writes=False),
        Action("memory_update", 0.2, subject=("id",)),  # the old version stays: like storing
        Action("memory_history", 0.0, writes=False, subject=("id",)),
        Action("memory_forget", 0.6, subject=("id",)),
        Action("memory_forget_owner", 0.8, subject=("owner",)),
        Action("bus_send", 0.2, subject=("recipient", "topic")),
        Action("bus_receive", 0.0, writes=False, subject=("mailbox",)),
        Action("bus_ack", 0.0, subject=("mailbox",)),
        Action("bus_nack", 0.0, subject=("mailbox",)),
        Action("bus_subscribe", 0.1, subject=("pattern",)),
        Action("bus_unsubscribe", 0.1, subject=("pattern",)),
        Action("approvals_list", 0.0, writes=False, askable=False),
        Action("approval_get", 0.0, writes=False, subject=("id",), askable=False),
        Action("approval_decide", 0.0, subject=("id",), askable=False),
        Action("run_agent", 0.2, subject=("agent",)),
    )
}


def caller_of(principal: Principal) -> Caller:
    """Policy's view of a principal: an agent by its name and level; a person by their id."""
    if principal.kind is PrincipalKind.AGENT:
        return Caller(principal.name, principal.level or Level.L2)
    return Caller(principal.mailbox)


class Governor:
    def __init__(
        self, gate: Gate, settings: GovernanceSettings, agents: AgentRegistry, wait_seconds: float = 0.0
    ) -> None:
        self.gate = gate
        self.settings = settings
        self.agents = agents
        self.wait_seconds = wait_seconds
        self._node_policy = settings.policy()
        self._agent_policies: dict[tuple[str, str], Policy] = {}  # (agent, its rules) → compiled

    async def policy_for(self, principal: Principal) -> Policy:
        """The node's rules; for an agent, with its level's and its own."""
        if principal.kind is not PrincipalKind.AGENT:
            return self._node_policy
        rules = (await self.agents.get(principal.name)).rules
        key = (principal.name, repr(sorted((str(k), v) for k, v in rules.items())))
        policy = self._agent_policies.get(key)
        if policy is None:
            if len(self._agent_policies) > 1024:  # profiles changed many times: start over
                self._agent_policies.clear()
            policy = self.settings.policy({principal.name: {str(k): v for k, v in rules.items()}})
            self._agent_policies[key] = policy
        return policy

    async def run(
        self,
        principal: Principal,
        name: str,
        args: Mapping[str, Any],
        act: Callable[[], Awaitable[T]],
        session: str | None = None,
    ) -> T:
        """Clear action ``name`` with ``args`` for ``principal``, run ``act``, audit the outcome."""
        action = ACTIONS[name]
        caller = caller_of(principal)
        call = action.call(args)
        clearance: Clearance = await self.gate.admit(
            await self.policy_for(principal),
            caller,
            call,
            args,
            session,
            self.wait_seconds,
            askable=action.askable,
        )
        try:
            result = await act()
        except BaseException as exc:
            if isinstance(exc, NoosphereError):
                outcome = exc.code
            elif isinstance(exc, anyio.get_cancelled_exc_class()):
                outcome = "cancelled"  # the caller went away
            else:
                outcome = "internal_error"
            with anyio.CancelScope(shield=True):
                await self.gate.record(caller, call, clearance, outcome, None)
            raise
        await self.gate.record(caller, call, clearance, "ok", None)
        return result


__all__ = ["ACTIONS", "Action", "Governor", "caller_of"]
