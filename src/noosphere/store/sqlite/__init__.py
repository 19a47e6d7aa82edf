"""SQLite backend: one file per node, FTS5 for BM25, an exact in-process vector index.

One connection, used from worker threads one call at a time (SQLite serialises writers anyway);
WAL mode so a CLI process can read and write beside a running node. ``secure_delete`` zeroes the
pages that deleted rows leave behind, and forgetting merges the full-text index and checkpoints
the WAL so no copy of forgotten text survives in the file."""

from __future__ import annotations

from noosphere.store.sqlite.agents import SQLiteAgents
from noosphere.store.sqlite.approvals import SQLiteApprovals
from noosphere.store.sqlite.audit import SQLiteAudit
from noosphere.store.sqlite.federation import SQLiteFederation
from noosphere.store.sqlite.jobs import SQLiteJobRuns
from noosphere.store.sqlite.ledger import SQLiteLedger
from noosphere.store.sqlite.mailboxes import SQLiteMailboxes
from noosphere.store.sqlite.memories import SQLiteMemories
from noosphere.store.sqlite.principals import SQLitePrincipals


class SQLiteStore(
    SQLiteFederation,  # first: it builds on SQLiteMemories
    SQLiteMemories,
    SQLitePrincipals,
    SQLiteLedger,
    SQLiteAudit,
    SQLiteApprovals,
    SQLiteAgents,
    SQLiteJobRuns,
    SQLiteMailboxes,
):
    """Every concept's part of the store over one connection."""


__all__ = ["SQLiteStore"]
