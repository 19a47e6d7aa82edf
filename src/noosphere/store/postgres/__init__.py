"""PostgreSQL + pgvector backend: HNSW (cosine) for vectors, tsvector/GIN for full text.

For several node processes on one database, or data beyond one machine's memory. Filtered vector
queries use pgvector's iterative index scans so a selective filter does not starve the result.
Forgetting deletes rows and index entries and vacuums the table; PostgreSQL may keep old bytes in
its WAL until the next checkpoint recycles it (see docs/memory.md)."""

from __future__ import annotations

from noosphere.store.postgres.agents import PostgresAgents
from noosphere.store.postgres.approvals import PostgresApprovals
from noosphere.store.postgres.audit import PostgresAudit
from noosphere.store.postgres.cluster import PostgresCluster
from noosphere.store.postgres.federation import PostgresFederation
from noosphere.store.postgres.jobs import PostgresJobRuns
from noosphere.store.postgres.ledger import PostgresLedger
from noosphere.store.postgres.mailboxes import PostgresMailboxes
from noosphere.store.postgres.memories import PostgresMemories
from noosphere.store.postgres.principals import PostgresPrincipals


class PostgresStore(
    PostgresFederation,  # first: it builds on PostgresMemories
    PostgresMemories,
    PostgresPrincipals,
    PostgresLedger,
    PostgresAudit,
    PostgresApprovals,
    PostgresAgents,
    PostgresJobRuns,
    PostgresMailboxes,
    PostgresCluster,
):
    """Every concept's part of the store over one connection pool."""


__all__ = ["PostgresStore"]
