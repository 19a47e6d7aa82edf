"""The storage contract: what the node needs from a backend, and nothing more, one protocol per
concept (``memories``, ``principals``, ``ledger``, ``audit``, ``mailboxes``, ``approvals``,
``agents``, ``jobs``, ``federation``); ``MemoryStore`` is all of them, opened and closed as one.

Two backends implement it (``store/sqlite/``, ``store/postgres/``, one module per concept);
``tests/contract/`` runs each concept's suite over both. Records cross this boundary as ``Memory``
(content as stored: ciphertext when ``encrypted``) plus an optional embedding. Visibility is
decided here, in the query, from a ``Viewer`` that the service derives from the authenticated
principal — never from caller arguments.
"""

from __future__ import annotations

from typing import Protocol

from noosphere.store.contract.agents import (
    Agents,
    TaskRecord,
)
from noosphere.store.contract.approvals import (
    ApprovalRecord,
    Approvals,
)
from noosphere.store.contract.audit import (
    AuditEntry,
    AuditLog,
    TreeHead,
)
from noosphere.store.contract.federation import (
    ALL_PEERS,
    FederatedItem,
    FederatedRecords,
    Replica,
    StoredPeer,
    Witnessed,
    refuse_unfederated,
)
from noosphere.store.contract.jobs import (
    JobRunRecord,
    JobRuns,
)
from noosphere.store.contract.ledger import (
    USAGE_COLUMNS,
    ApiKeyRecord,
    Charge,
    Holds,
    Ledger,
    UsageRecord,
    UsageSummary,
    balance_deltas,
    check_balanced,
)
from noosphere.store.contract.mailboxes import (
    ClaimedMail,
    Mailboxes,
    MailCounts,
    MailRow,
)
from noosphere.store.contract.memories import (
    Candidate,
    EmbedderInfo,
    Memories,
    NewRecord,
    Vector,
    Viewer,
)
from noosphere.store.contract.principals import (
    PrincipalRecord,
    Principals,
)


class MemoryStore(
    Memories, Principals, Ledger, AuditLog, Mailboxes, Approvals, Agents, JobRuns, FederatedRecords, Protocol
):
    """A storage backend: every concept's protocol, opened and closed as one."""

    async def open(self) -> None:
        """Connect and apply pending migrations."""

    async def close(self) -> None: ...


__all__ = [
    "ALL_PEERS",
    "USAGE_COLUMNS",
    "Agents",
    "ApiKeyRecord",
    "ApprovalRecord",
    "Approvals",
    "AuditEntry",
    "AuditLog",
    "Candidate",
    "Charge",
    "ClaimedMail",
    "EmbedderInfo",
    "FederatedItem",
    "FederatedRecords",
    "Holds",
    "JobRunRecord",
    "JobRuns",
    "Ledger",
    "MailCounts",
    "MailRow",
    "Mailboxes",
    "Memories",
    "MemoryStore",
    "NewRecord",
    "PrincipalRecord",
    "Principals",
    "Replica",
    "StoredPeer",
    "TaskRecord",
    "TreeHead",
    "UsageRecord",
    "UsageSummary",
    "Vector",
    "Viewer",
    "Witnessed",
    "balance_deltas",
    "check_balanced",
    "refuse_unfederated",
]
