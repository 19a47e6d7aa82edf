"""Who may call what: one table for every HTTP route, WebSocket, MCP tool and CLI command, and the
one check that enforces it (``authorize``). docs/security.md shows the same table; a test fails
when a route, tool or command has no row, or when the page and the table differ.

The table decides by the *kind* of caller (its role). What a caller may do with one object — its
own private memories, its own mailbox, the approvals of agents it is named approver of — is the
services' part, written in the table's last column.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from noosphere.auth.principal import Principal, PrincipalKind
from noosphere.errors import PermissionDenied, Unauthenticated

Surface = Literal["http", "ws", "mcp", "cli"]
JOB_PREFIX = "job:"  # a scheduled job's principal id (``scheduler.job_principal``)


class Role(StrEnum):
    ANYONE = "anyone"  # no credential needed
    OPERATOR = "operator"  # whoever may open the data directory (0700): the node's own account
    ADMIN = "admin"
    USER = "user"  # a user's own token
    KEY = "user-key"  # a user's API key (metered): the OpenAI-compatible API only
    L0 = "agent-L0"
    L1 = "agent-L1"
    L2 = "agent-L2"
    L3 = "agent-L3"
    WORKER = "worker"  # joins the pool; nothing else
    JOB = "job"  # a scheduled job's own principal; acts inside the node only
    PEER = "peer"  # another node, by a request signed with its node key (federation)
    METRICS = "metrics"  # the metrics token (`auth.metrics_token`): reads /metrics, nothing else


PEOPLE = frozenset({Role.ADMIN, Role.USER})
AGENTS = frozenset({Role.L0, Role.L1, Role.L2, Role.L3})
MEMBERS = PEOPLE | AGENTS  # everyone with a principal of this node, keys and workers aside
OPENAI = MEMBERS | {Role.KEY}
ADMIN = frozenset({Role.ADMIN})
PUBLIC = frozenset({Role.ANYONE})
# Every role that authenticates; ``ANYONE`` and ``OPERATOR`` are not callers with a token.
CALLERS = (Role.ADMIN, Role.USER, Role.KEY, Role.L0, Role.L1, Role.L2, Role.L3, Role.WORKER, Role.JOB)


@dataclass(frozen=True)
class Grant:
    surface: Surface
    name: str  # "POST /api/v1/memories", "/ws/worker", "memory_store", "noosphere memory add"
    roles: frozenset[Role]
    rule: str = ""  # what the service checks beyond the role


_OWN_MEMORY = "own private memories; shared and federated by level (see docs/memory.md)"
_OWN_MAILBOX = "own mailbox; admin any"
_APPROVER = "admin, the agent's owner or a named approver decides; agents read their own requests"
_RUN = "admin, or the agent's owner; billed to the caller"
_ERASE = "the owner themself, or the admin"


def _rows(surface: Surface, roles: frozenset[Role], rule: str, *names: str) -> list[Grant]:
    return [Grant(surface, name, roles, rule) for name in names]


TABLE: tuple[Grant, ...] = tuple(
    [
        *_rows("http", PUBLIC, "", "GET /healthz", "GET /readyz", "GET /openapi.json", "GET /docs"),
        *_rows("http", PUBLIC, "", "GET /docs/oauth2-redirect", "GET /redoc"),
        Grant("http", "GET /metrics", frozenset({Role.ADMIN, Role.METRICS})),
        *_rows(
            "http",
            PUBLIC,
            "the dashboard's sign-in and its vendored files; the sign-in takes people's tokens only",
            "GET /",
            "GET /ui/login",
            "POST /ui/login",
            "POST /ui/logout",
            "GET /ui/static/{name}",
        ),
        *_rows(
            "http",
            PEOPLE,
            "a signed-in person (session cookie and CSRF token) or a bearer token; as the API",
            "GET /ui",
            "GET /ui/chat",
            "POST /ui/chat",
            "GET /ui/live/{topic}",
        ),
        *_rows("http", PEOPLE, _APPROVER, "GET /ui/approvals", "POST /ui/approvals/decide"),
        *_rows(
            "http",
            PEOPLE,
            _OWN_MEMORY,
            "GET /ui/memory",
            "GET /ui/memory/{memory_id}",
            "POST /ui/memory/{memory_id}/forget",
        ),
        *_rows(
            "http",
            ADMIN,
            "",
            "GET /ui/pool",
            "POST /ui/keys",
            "POST /ui/keys/revoke",
            "GET /ui/agents",
            "GET /ui/audit",
            "GET /ui/federation",
            "POST /ui/federation/switch",
        ),
        *_rows(
            "http",
            frozenset({Role.PEER}),
            "a configured, unpaused peer, by a signed request (docs/federation.md)",
            "POST /federation/v1/heartbeat",
            "POST /federation/v1/doorbell",
            "POST /federation/v1/changes",
            "POST /federation/v1/reconcile",
            "POST /federation/v1/records",
            "POST /federation/v1/search",
            "POST /federation/v1/audit/head",
            "POST /federation/v1/audit/consistency",
            "POST /federation/v1/audit/witnessed",
        ),
        *_rows(
            "http",
            frozenset({Role.PEER}),
            "a peer this node lets forward chats (`forward_chat`); run and metered as that peer's request",
            "POST /federation/v1/chat",
        ),
        *_rows(
            "http",
            frozenset({Role.PEER}),
            "a peer this node lets forward agent tasks (`forward_agents`), for an agent served here, "
            "within `federation.tasks_per_peer`; metered as that peer's; a peer reads only its own tasks",
            "POST /federation/v1/tasks",
            "POST /federation/v1/tasks/states",
        ),
        *_rows("http", OPENAI, "", "GET /v1/models", "POST /v1/embeddings", "POST /v1/chat/completions"),
        *_rows(
            "http",
            MEMBERS,
            _OWN_MEMORY,
            "POST /api/v1/memories",
            "GET /api/v1/memories",
            "POST /api/v1/memories/batch",
            "POST /api/v1/memories/search",
            "GET /api/v1/memories/{memory_id}",
            "DELETE /api/v1/memories/{memory_id}",
            "POST /api/v1/memories/{memory_id}/versions",
            "GET /api/v1/memories/{memory_id}/history",
        ),
        Grant("http", "DELETE /api/v1/memories", MEMBERS, _ERASE),
        Grant("http", "POST /api/v1/memories/gc", ADMIN),
        *_rows("http", ADMIN, "", "GET /api/v1/users", "POST /api/v1/users", "DELETE /api/v1/users/{name}"),
        *_rows(
            "http",
            ADMIN,
            "",
            "POST /api/v1/users/{name}/token",
            "POST /api/v1/users/{name}/reset-secret",
            "POST /api/v1/agents/{name}/token",
            "POST /api/v1/workers/{name}/token",
        ),
        *_rows("http", ADMIN, "", "GET /api/v1/keys", "POST /api/v1/keys", "DELETE /api/v1/keys/{key_id}"),
        Grant("http", "GET /api/v1/usage", ADMIN),
        *_rows("http", ADMIN, "", "GET /api/v1/audit", "GET /api/v1/audit/heads"),
        *_rows(
            "http",
            ADMIN,
            "",
            "GET /api/v1/federation/peers",
            "POST /api/v1/federation/peers",
            "DELETE /api/v1/federation/peers/{peer_id}",
            "POST /api/v1/federation/pause",
            "POST /api/v1/federation/resume",
        ),
        *_rows(
            "http",
            MEMBERS,
            _OWN_MAILBOX,
            "POST /api/v1/bus/messages",
            "POST /api/v1/bus/requests",
            "POST /api/v1/bus/mailboxes/{mailbox}/receive",
            "POST /api/v1/bus/mailboxes/{mailbox}/ack",
            "POST /api/v1/bus/mailboxes/{mailbox}/nack",
            "GET /api/v1/bus/mailboxes",
            "GET /api/v1/bus/subscriptions",
            "PUT /api/v1/bus/subscriptions",
            "DELETE /api/v1/bus/subscriptions",
        ),
        Grant("http", "GET /api/v1/approvals", PEOPLE, _APPROVER),
        Grant("http", "GET /api/v1/approvals/{approval_id}", MEMBERS, _APPROVER),
        *_rows(
            "http",
            PEOPLE,
            _APPROVER,
            "POST /api/v1/approvals/{approval_id}/approve",
            "POST /api/v1/approvals/{approval_id}/reject",
            "POST /api/v1/approvals/{approval_id}/escalate",
        ),
        *_rows("http", ADMIN, "", "GET /api/v1/tools", "GET /api/v1/agents", "POST /api/v1/agents"),
        *_rows("http", ADMIN, "", "GET /api/v1/agents/{name}", "DELETE /api/v1/agents/{name}"),
        Grant("http", "POST /api/v1/agents/{name}/run", PEOPLE, _RUN),
        Grant("http", "GET /api/v1/tasks", ADMIN),
        Grant("http", "GET /api/v1/tasks/{task_id}", MEMBERS, "people see every task; an agent its own"),
        *_rows(
            "http", ADMIN, "", "GET /api/v1/jobs", "GET /api/v1/jobs/runs", "POST /api/v1/jobs/{name}/run"
        ),
        Grant("http", "GET /api/v1/pool", ADMIN),
        Grant("http", "GET /api/v1/cluster", ADMIN),
        *_rows("http", MEMBERS, "each tool as below", "POST /mcp", "GET /mcp", "DELETE /mcp"),
        Grant("ws", "/ws/worker", frozenset({Role.WORKER, Role.ADMIN}), "serves the models it announces"),
        *_rows(
            "mcp",
            MEMBERS,
            _OWN_MEMORY,
            "memory_store",
            "memory_store_many",
            "memory_search",
            "memory_get",
            "memory_list",
            "memory_forget",
            "memory_update",
            "memory_history",
        ),
        *_rows("mcp", MEMBERS, _OWN_MAILBOX, "bus_send", "bus_receive", "bus_ack", "bus_subscribe"),
        *_rows("mcp", PEOPLE, _APPROVER, "approvals_list", "approval_decide"),
        Grant("mcp", "run_agent", PEOPLE, _RUN),
        *_rows(
            "cli",
            frozenset({Role.OPERATOR}),
            "opens the data directory",
            "noosphere up",
            "noosphere cluster up",
        ),
        Grant("cli", "noosphere mcp", MEMBERS, "as /mcp"),
        Grant("cli", "noosphere worker", frozenset({Role.WORKER, Role.ADMIN}), "as /ws/worker"),
        *_rows(
            "cli",
            MEMBERS,
            _OWN_MEMORY,
            "noosphere memory add",
            "noosphere memory search",
            "noosphere memory get",
            "noosphere memory list",
            "noosphere memory forget",
            "noosphere memory update",
            "noosphere memory history",
            "noosphere memory export",
            "noosphere memory import",
        ),
        *_rows("cli", ADMIN, "", "noosphere memory reembed", "noosphere memory gc"),
        *_rows(
            "cli",
            ADMIN,
            "",
            "noosphere agent create",
            "noosphere agent show",
            "noosphere agent list",
            "noosphere agent delete",
            "noosphere agent token",
            "noosphere agent export",
            "noosphere agent import",
            "noosphere user create",
            "noosphere user list",
            "noosphere user delete",
            "noosphere user token",
            "noosphere user reset-secret",
            "noosphere key create",
            "noosphere key list",
            "noosphere key revoke",
            "noosphere worker-token",
            "noosphere usage",
            "noosphere audit show",
            "noosphere audit verify",
            "noosphere audit heads",
            "noosphere audit public-key",
            "noosphere node show",
            "noosphere peers add",
            "noosphere peers list",
            "noosphere peers remove",
            "noosphere federation pause",
            "noosphere federation resume",
        ),
        Grant("cli", "noosphere pool", ADMIN, "as GET /api/v1/pool"),
        Grant("cli", "noosphere cluster status", ADMIN, "as GET /api/v1/cluster"),
        *_rows(
            "cli",
            MEMBERS,
            _OWN_MAILBOX,
            "noosphere bus send",
            "noosphere bus publish",
            "noosphere bus receive",
            "noosphere bus ack",
            "noosphere bus status",
            "noosphere bus subscribe",
            "noosphere bus unsubscribe",
            "noosphere bus subscriptions",
        ),
        *_rows(
            "cli",
            PEOPLE,
            _APPROVER,
            "noosphere approvals list",
            "noosphere approvals show",
            "noosphere approvals approve",
            "noosphere approvals reject",
            "noosphere approvals escalate",
        ),
        Grant("cli", "noosphere run", PEOPLE, "as POST /api/v1/agents/{name}/run"),
        *_rows(
            "cli",
            ADMIN,
            "as /api/v1/jobs",
            "noosphere jobs list",
            "noosphere jobs runs",
            "noosphere jobs run",
        ),
    ]
)
_INDEX: dict[tuple[Surface, str], Grant] = {(g.surface, g.name): g for g in TABLE}


def role_of(principal: Principal | None) -> Role:
    """The role the table knows ``principal`` by (``ANYONE`` without a credential)."""
    if principal is None:
        return Role.ANYONE
    if principal.kind is PrincipalKind.USER and principal.key is not None:
        return Role.KEY
    if principal.kind is PrincipalKind.AGENT:
        if principal.id.startswith(JOB_PREFIX):
            return Role.JOB
        return Role(f"agent-{principal.level.value if principal.level else 'L2'}")
    return Role(principal.kind.value)


def grant(surface: Surface, name: str) -> Grant:
    """The table's row; a name without one is refused to everyone (a bug to fix, never a hole)."""
    found = _INDEX.get((surface, name))
    if found is None:
        return Grant(surface, name, frozenset())
    return found


def permits(surface: Surface, name: str, principal: Principal | None) -> bool:
    roles = grant(surface, name).roles
    return Role.ANYONE in roles or role_of(principal) in roles


def authorize(surface: Surface, name: str, principal: Principal | None) -> None:
    """Raise unless the table lets ``principal`` call ``name``."""
    if permits(surface, name, principal):
        return
    if principal is None:
        raise Unauthenticated("this needs a bearer token")
    raise PermissionDenied(f"{name} is not open to {role_of(principal).value} credentials")


__all__ = ["CALLERS", "TABLE", "Grant", "Role", "authorize", "grant", "permits", "role_of"]
