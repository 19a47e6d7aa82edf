"""The agent runtime of a node: runs an agent on a task (``run``), and serves the agents marked
``serve``: each takes TASK_DELEGATE messages from its mailbox, accepts or rejects them, works on
them and reports TASK_COMPLETE."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from noosphere.agents.builtin import delegation_tools, memory_tools, message_tools
from noosphere.agents.delegation import Delegation, TaskStatus, outranks
from noosphere.agents.loop import AgentLoop, Emit, Limits, RunResult, no_progress
from noosphere.agents.model import ChatModel
from noosphere.agents.profile import AgentProfile
from noosphere.agents.tools import Tool, ToolContext
from noosphere.auth.principal import PEER_PREFIX, Principal, PrincipalKind, peer_principal, principal_id
from noosphere.bus import Delivery, Kind
from noosphere.config import RuntimeSettings
from noosphere.errors import InvalidRequest, NoosphereError, NotFound, PermissionDenied
from noosphere.node import Node
from noosphere.store.contract import TaskRecord

logger = logging.getLogger(__name__)

RESCAN_SECONDS = 5.0  # how soon an agent newly marked ``serve`` starts taking tasks


if TYPE_CHECKING:
    from noosphere.agents.mcp_tools import McpToolbox


class Runtime:
    def __init__(
        self,
        node: Node,
        model: ChatModel,
        default_model: str,
        settings: RuntimeSettings,
        extra_tools: Sequence[Tool] = (),
        toolbox: McpToolbox | None = None,
    ) -> None:
        self.node = node
        self.model = model
        self.default_model = default_model
        self.settings = settings
        self.delegation = Delegation(
            node.store,
            node.bus,
            node.agents,
            node.settings.bus.poll_seconds,
            lease_seconds=settings.task_lease_seconds,
        )
        self.gate = node.governor.gate
        within = settings.delegation_timeout_minutes * 60
        tools = [
            *memory_tools(node.memory),
            *message_tools(node.bus),
            *delegation_tools(self.delegation, node.agents, node.bus, within),
            *extra_tools,
        ]
        self.builtin = {tool.name: tool for tool in tools}
        self.toolbox = toolbox
        self.limits = Limits(
            settings.max_parallel_tools,
            settings.memories_in_prompt,
            settings.reply_tokens,
            settings.run_timeout_minutes,
        )
        self.served: frozenset[str] = frozenset()  # the agents ``serve`` runs now
        # In a cluster, runs ``work(name)`` while this process holds lease ``lease`` (``Leases.holding``).
        self.exclusive: Callable[[str, Callable[[str], Awaitable[None]], str], Awaitable[None]] | None = None

    @property
    def tools(self) -> dict[str, Tool]:
        """Every tool agents may be offered now: built-in, given, and those of the MCP servers
        connected at the moment."""
        return {**(self.toolbox.tools if self.toolbox else {}), **self.builtin}

    async def admit(self, caller: Principal, name: str) -> None:
        """Refuse a run ``caller`` may not start: people run agents (an agent delegates), and the
        agent must exist. Checked before a stream starts, so a refusal is a plain HTTP error."""
        if not caller.is_person:
            raise PermissionDenied("people run agents; an agent delegates instead")
        profile = await self.node.agents.get(name)
        if not caller.is_admin and profile.owner != caller.name:
            raise PermissionDenied(
                f"agent {name} is not {caller.name}'s to run (its owner or the admin runs it)"
            )

    async def run(
        self,
        name: str,
        task: str,
        session: str | None = None,
        emit: Emit = no_progress,
        run_id: str | None = None,
        payer: Principal | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> RunResult:
        """Run agent ``name`` on ``task`` until it answers or a budget runs out. Its model calls are
        billed to ``payer`` — the person who started the run, with their key's limits — or, for
        delegated and scheduled runs, to the agent itself. ``data`` (a triggering message's
        payload) reaches the model as marked data, never as part of its instructions."""
        if not task.strip():
            raise InvalidRequest("the task is empty")
        everyone = await self.node.agents.every()
        profile = next((a for a in everyone if a.name == name), None)
        if profile is None:
            raise NotFound(f"no agent named {name!r}")
        run_id = run_id or "run_" + uuid.uuid4().hex[:16]
        ctx = ToolContext(
            agent=profile,
            principal=Principal(
                principal_id(PrincipalKind.AGENT, name), PrincipalKind.AGENT, name, profile.level
            ),
            session=session or run_id,
            run_id=run_id,
            delegates=self._delegates(profile, everyone),
            payer=payer,
        )
        policy = self.node.settings.governance.policy({name: {str(k): v for k, v in profile.rules.items()}})
        model = profile.model or self.default_model
        loop = AgentLoop(ctx, self.model, model, self.tools, self.gate, policy, self.node.memory, self.limits)
        return await loop.run(task, emit, data)

    def _delegates(self, profile: AgentProfile, everyone: Sequence[AgentProfile]) -> tuple[str, ...]:
        """The agents ``profile`` may delegate to: those of a lower level here, then those live
        peers offer under other names."""
        here = [a.name for a in everyone if outranks(profile.level, a.level)]
        remote = self.delegation.remote
        offered = {} if remote is None else remote.offered()
        names = {a.name for a in everyone}
        elsewhere = [
            n for n, level in sorted(offered.items()) if n not in names and outranks(profile.level, level)
        ]
        return (*here, *elsewhere)

    async def serve(self, rescan_seconds: float = RESCAN_SECONDS) -> None:
        """Serve every agent marked ``serve``, forever (one task at a time per agent). Agents
        marked, unmarked, created or deleted while the node runs (from the CLI, another process)
        are picked up within ``rescan_seconds``."""
        serving: dict[str, anyio.CancelScope] = {}
        async with anyio.create_task_group() as group:
            while True:
                self.served = frozenset(serving)
                try:
                    wanted = {p.name for p in await self.node.agents.every() if p.serve}
                except NoosphereError as exc:
                    logger.warning("listing agents to serve: %s (%s); retrying", exc.message, exc.code)
                    wanted = set(serving)
                for name in set(serving) - wanted:
                    serving.pop(name).cancel()
                for name in sorted(wanted - set(serving)):
                    serving[name] = await group.start(self._serve, name)
                self.served = frozenset(serving)
                await anyio.sleep(rescan_seconds)

    async def _serve(self, name: str, *, task_status: anyio.abc.TaskStatus[anyio.CancelScope]) -> None:
        with anyio.CancelScope() as scope:
            task_status.started(scope)
            if self.exclusive is None:
                await self._take_tasks(name)
            else:  # in a cluster: one process at a time takes this agent's tasks
                await self.exclusive(f"agent:{name}", self._take_tasks, name)

    async def _take_tasks(self, name: str) -> None:
        wait = self.node.settings.bus.max_wait_seconds
        while True:
            try:
                for delivery in await self.node.bus.receive(name, 1, wait):
                    await self._handle(await self.node.agents.get(name), delivery)
            except NoosphereError as exc:
                logger.warning("agent %s: %s (%s); retrying", name, exc.message, exc.code)
                await anyio.sleep(1)

    async def _handle(self, profile: AgentProfile, delivery: Delivery) -> None:
        envelope = delivery.envelope
        await self.node.bus.ack(profile.name, [envelope.id])  # the task's own state is durable from here
        if envelope.kind is not Kind.TASK_DELEGATE:
            logger.info(
                "agent %s: set aside a %s message from %s", profile.name, envelope.kind, envelope.sender
            )
            return
        task_id = str(envelope.payload.get("task_id", ""))
        record = await self.node.store.task(task_id)
        if record is None or record.status != TaskStatus.DELEGATED:
            return  # a redelivery of a task already taken, or one that was never recorded
        needs = [str(n) for n in envelope.payload.get("needs") or []]
        if not profile.can(needs):
            missing = sorted(set(needs) - set(profile.capabilities))
            await self.delegation.reject(task_id, profile.name, f"{profile.name} lacks {', '.join(missing)}")
            return
        await self.delegation.accept(task_id, profile.name)
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._keep_lease, task_id)
                result = await self.run(profile.name, record.task, session=task_id, payer=_payer(record))
                group.cancel_scope.cancel()
        except NoosphereError as exc:
            await self.delegation.fail(task_id, profile.name, f"{exc.code}: {exc.message}")
            return
        if result.status == "completed":
            await self.delegation.complete(task_id, profile.name, result.answer)
        else:
            await self.delegation.fail(task_id, profile.name, f"{result.status}: {result.answer}")

    async def _keep_lease(self, task_id: str) -> None:
        """Renew the lease of the task being worked on, so no one takes it for abandoned."""
        while True:  # a lease is renewed on a clock, not on an event
            if not await self.delegation.hold(task_id):
                return
            await anyio.sleep(self.delegation.lease_seconds / 3)

    async def recover(self, every: float | None = None) -> None:
        """Resume or fail tasks whose runner is gone, forever (a node killed mid-task), looking
        every half lease unless told ``every``."""
        while True:
            for record in await self.delegation.recover():
                logger.warning(
                    "task %s of %s: its runner was gone; now %s", record.id, record.assignee, record.status
                )
            await anyio.sleep(every or self.delegation.lease_seconds / 2)


def _payer(record: TaskRecord) -> Principal | None:
    """Who pays for a delegated task's model calls: the peer node that gave it (metered as its
    request), otherwise the agent itself."""
    if record.delegator.startswith(PEER_PREFIX):
        return peer_principal(record.delegator.removeprefix(PEER_PREFIX))
    return None


__all__ = ["Runtime"]
