"""The storage contract: what the memory service needs from a backend, and nothing more.

Two backends implement it (``sqlite.py``, ``postgres.py``); ``tests/contract/`` runs one suite over
both. Records cross this boundary as ``Memory`` (content as stored: ciphertext when ``encrypted``)
plus an optional embedding. Visibility is decided here, in the query, from a ``Viewer`` that the
service derives from the authenticated principal — never from caller arguments.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from noosphere.memory.model import Filters, Memory
from noosphere.pool.budget import BudgetPeriod, periods_of

Vector = NDArray[np.float32]


@dataclass(frozen=True)
class Viewer:
    """Whose eyes a read goes through. ``principal_id=None`` sees every zone of every owner (the
    node admin); anyone else sees their own private memories plus shared and federated ones."""

    principal_id: str | None

    def sees(self, memory: Memory, now: datetime) -> bool:
        """The visibility rule: not forgotten, not expired, and private only to its owner. Both
        backends' SQL (``where``) and the vector index's mask say the same; the contract suite
        checks every read path against this."""
        if memory.tombstone or (memory.expires_at is not None and memory.expires_at <= now):
            return False
        return (
            self.principal_id is None or memory.zone.value != "private" or memory.owner == self.principal_id
        )


@dataclass(frozen=True)
class NewRecord:
    memory: Memory  # seq is assigned by the store; the value passed in is ignored
    embedding: Vector | None
    index_text: str | None  # what full-text search indexes (None: not indexed, e.g. ciphertext)


@dataclass(frozen=True)
class Candidate:
    id: str
    score: float
    valid_at: datetime | None = None  # set by vector_candidates (the recency nudge needs it)


@dataclass(frozen=True)
class EmbedderInfo:
    model_id: str
    dimension: int


@dataclass(frozen=True)
class PrincipalRecord:
    id: str
    kind: str  # admin | agent | user
    name: str
    level: str | None
    token_hash: str
    key_salt: bytes
    created_at: datetime
    disabled: bool = False
    capture: bool = False  # keeps its chat exchanges as conversation memories (users opt in)
    models: tuple[str, ...] | None = None  # workers: the model names it may serve (None: any)


@dataclass(frozen=True)
class ApiKeyRecord:
    id: str
    user_id: str
    name: str
    token_hash: str
    key_salt: bytes
    rpm: int | None
    tpm: int | None
    budget: float | None  # credits; None = unlimited
    created_at: datetime
    revoked: bool = False
    budget_period: BudgetPeriod = "total"
    capture: bool = False  # keep this key's chat exchanges as conversation memories


@dataclass(frozen=True)
class UsageRecord:
    id: str
    at: datetime
    principal: str
    key_id: str | None
    model: str
    worker: str | None
    prompt_tokens: int  # counted by the gateway
    completion_tokens: int  # counted by the gateway
    reported_prompt: int | None  # what the worker said
    reported_completion: int | None
    credits: float
    status: str  # ok | failed | cancelled

    def row(self, at: object) -> list[object]:
        """Its values in ``USAGE_COLUMNS`` order, with ``at`` as the backend stores time."""
        return [
            self.id,
            at,
            self.principal,
            self.key_id,
            self.model,
            self.worker,
            self.prompt_tokens,
            self.completion_tokens,
            self.reported_prompt,
            self.reported_completion,
            self.credits,
            self.status,
        ]


USAGE_COLUMNS = (
    "id, at, principal, key_id, model, worker, prompt_tokens, completion_tokens, reported_prompt, "
    "reported_completion, credits, status"
)


@dataclass(frozen=True)
class AuditEntry:
    seq: int  # position in the log, from 0
    entry: str  # canonical JSON, exactly the bytes the leaf hashes
    leaf: bytes  # RFC 9162 leaf hash of ``entry``


@dataclass(frozen=True)
class TreeHead:
    size: int  # entries covered: seq 0 .. size-1
    root: bytes
    at: datetime
    signature: bytes  # Ed25519, by the node's key, over ``governance.audit.head_message``


@dataclass(frozen=True)
class MailRow:
    """An envelope on its way into one mailbox."""

    mailbox: str
    id: str
    priority: int
    expires_at: float | None  # epoch seconds
    body: str  # the envelope, JSON


@dataclass(frozen=True)
class ClaimedMail:
    id: str
    body: str
    attempts: int  # deliveries so far, this one included


@dataclass(frozen=True)
class MailCounts:
    mailbox: str
    ready: int
    in_flight: int
    dead: int


@dataclass(frozen=True)
class ApprovalRecord:
    """A call that policy sent to a human, and what became of it."""

    id: str
    requester: str  # the caller's bus address (an agent's name, a principal id)
    level: str | None
    tool: str
    subject: str | None
    args_digest: str  # SHA-256 of the canonical arguments; re-checked before the call runs
    impact: float
    reason: str  # why a human is asked (the policy decision)
    session: str | None
    status: str  # pending | approved | rejected | timeout | escalated
    created_at: datetime
    expires_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None
    scope: str | None = None  # once | session | always, when approved
    note: str | None = None
    escalated_from: str | None = None  # the approval this one escalates; only the admin decides it
    used_at: datetime | None = None  # when the call it cleared ran, or its refusal was reported


@dataclass(frozen=True)
class TaskRecord:
    """A task one agent delegated to another: TASK_DELEGATE → ACCEPT/REJECT → COMPLETE."""

    id: str
    delegator: str
    assignee: str
    task: str
    status: str  # delegated | accepted | rejected | completed | failed
    created_at: datetime
    updated_at: datetime
    result: str | None = None  # the answer, or why it was rejected or failed
    session: str | None = None  # the delegator's session
    lease_until: datetime | None = None  # an accepted task's runner renews this while it works
    attempts: int = 0  # runs whose lease lapsed (their node stopped)


@dataclass(frozen=True)
class JobRunRecord:
    """One run of a scheduled job; (job, tick) is unique, which is what makes a tick run once."""

    job: str
    tick: str  # the cron time (ISO 8601), or "msg:<id>" of the message that triggered it
    node: str
    started_at: datetime
    outcome: str  # running | ok | failed | denied | cancelled
    finished_at: datetime | None = None
    detail: str | None = None


# A request's usage and its ledger entries (account, amount), which sum to zero.
Charge = tuple[UsageRecord, Sequence[tuple[str, float]]]


def check_balanced(batch: Sequence[Charge]) -> None:
    """Refuse a batch in which some request's ledger entries do not sum to zero."""
    for usage, entries in batch:
        if not math.isclose(sum(amount for _, amount in entries), 0.0, abs_tol=1e-9):
            raise ValueError(f"ledger entries of request {usage.id} must sum to zero")


def balance_deltas(batch: Sequence[Charge]) -> list[tuple[str, str, float]]:
    """(account, period, amount) to add to the running balances for ``batch``'s entries."""
    sums: dict[tuple[str, str], float] = {}
    for usage, entries in batch:
        for period in periods_of(usage.at):
            for account, amount in entries:
                sums[account, period] = sums.get((account, period), 0.0) + amount
    return [(account, period, amount) for (account, period), amount in sums.items()]


@dataclass(frozen=True)
class UsageSummary:
    group: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    credits: float


class MemoryStore(Protocol):
    """A storage backend. Every method is one transaction."""

    async def open(self) -> None:
        """Connect and apply pending migrations."""

    async def close(self) -> None: ...

    # -- node metadata -------------------------------------------------------------------------
    async def embedder_info(self) -> EmbedderInfo | None: ...

    async def set_embedder_info(self, info: EmbedderInfo) -> None: ...

    # -- principals ----------------------------------------------------------------------------
    async def put_principal(self, record: PrincipalRecord) -> None:
        """Insert or replace a principal (by id)."""

    async def principal_by_token_hash(self, token_hash: str) -> PrincipalRecord | None: ...

    async def principal(self, principal_id: str) -> PrincipalRecord | None: ...

    async def principals(self, kind: str | None = None) -> list[PrincipalRecord]: ...

    async def delete_principal(self, principal_id: str) -> bool: ...

    async def forget_principal(self, principal_id: str, mailbox: str) -> int:
        """What a deleted principal leaves besides its memories, gone in one transaction: its
        standing approval grants, its mailbox and subscriptions, its API keys (revoked). Returns
        how many records went."""

    # -- API keys, usage and the ledger ---------------------------------------------------------
    async def put_api_key(self, record: ApiKeyRecord) -> None: ...

    async def api_key_by_token_hash(self, token_hash: str) -> ApiKeyRecord | None: ...

    async def api_keys(self, user_id: str | None = None) -> list[ApiKeyRecord]: ...

    async def revoke_api_key(self, key_id: str) -> bool: ...

    async def record_usage(self, batch: Sequence[Charge]) -> None:
        """Store requests' usage and ledger entries in one transaction. Each request's entries
        must sum to zero; if any does not, nothing is written."""

    async def balance(self, account: str, period: str = "total") -> float:
        """The account's running balance for ``period`` ('total', 'day:…', 'month:…'): one row."""

    async def usage_summary(self, by: str, since: datetime | None) -> list[UsageSummary]:
        """Totals grouped ``by`` one of: principal, key_id, worker, model."""

    # -- audit log -----------------------------------------------------------------------------
    async def append_audit(self, entries: Sequence[tuple[str, bytes]]) -> int:
        """Append (entry, leaf) pairs at the end of the log, atomically even across processes;
        returns the seq of the first."""

    async def audit_entries(self, start: int = 0, limit: int | None = None) -> list[AuditEntry]:
        """Entries from seq ``start`` on, in order."""

    async def put_tree_head(self, head: TreeHead) -> None:
        """Keep a signed tree head (a second head of the same size is ignored)."""

    async def tree_heads(self) -> list[TreeHead]:
        """Every signed tree head, smallest first."""

    # -- message bus (see noosphere.bus.transport for the semantics) ----------------------------
    async def enqueue_mail(self, rows: Sequence[MailRow], now: float) -> list[bool]:
        """Insert each row unless its mailbox already holds (or recently acknowledged) its id;
        True where inserted. One transaction."""

    async def claim_mail(
        self, mailbox: str, now: float, lease: float, limit: int, max_attempts: int
    ) -> list[ClaimedMail]:
        """Lease up to ``limit`` visible, unexpired envelopes in priority order (safe against
        concurrent claimers in other processes); envelopes already delivered ``max_attempts``
        times are set aside as dead instead."""

    async def ack_mail(self, mailbox: str, ids: Sequence[str], now: float) -> list[str]:
        """Settle envelopes; returns the ids that were still pending."""

    async def release_mail(self, mailbox: str, ids: Sequence[str], visible_at: float, now: float) -> int:
        """Leased envelopes become visible again at ``visible_at``."""

    async def subscribe(self, subscriber: str, pattern: str) -> None: ...

    async def unsubscribe(self, subscriber: str, pattern: str) -> bool: ...

    async def subscriptions(self, subscriber: str | None = None) -> list[tuple[str, str]]: ...

    async def mail_counts(self, mailbox: str | None, now: float) -> list[MailCounts]: ...

    async def purge_mail(self, now: float, settled_before: float) -> int:
        """Delete expired envelopes and those settled (acked or dead) before ``settled_before``."""

    # -- conversation keys -----------------------------------------------------------------------
    async def conversation_key(self, principal_id: str) -> tuple[bytes, str] | None:
        """The salt and check value of a principal's conversation key, once it has one."""

    async def put_conversation_key(self, principal_id: str, salt: bytes, check: str, at: datetime) -> bool:
        """Record them, unless the principal has some already (then False)."""

    async def delete_conversation_key(self, principal_id: str) -> bool:
        """Forget them (the owner lost the secret); False if there were none."""

    # -- approvals -----------------------------------------------------------------------------
    async def put_approval(self, record: ApprovalRecord) -> None: ...

    async def approval(self, approval_id: str) -> ApprovalRecord | None: ...

    async def approvals(self, status: str | None, limit: int) -> list[ApprovalRecord]:
        """Newest first."""

    async def settle_approval(
        self, approval_id: str, status: str, by: str, at: datetime, scope: str | None, note: str | None
    ) -> bool:
        """Record a decision if the approval is still pending (compare and set); False otherwise."""

    async def due_approvals(self, now: datetime) -> list[ApprovalRecord]:
        """Pending approvals whose time ran out."""

    async def open_approval(self, requester: str, tool: str, args_digest: str) -> ApprovalRecord | None:
        """The newest approval of this exact call not used yet, unless it was escalated (its
        successor is the one to look at): pending, or decided and waiting to be used."""

    async def use_approval(self, approval_id: str, at: datetime) -> bool:
        """Mark a decided approval used (compare and set); False if it was used already."""

    async def put_grant(
        self, requester: str, tool: str, subject: str | None, session: str | None, by: str, at: datetime
    ) -> None:
        """A standing approval: for one session, or (``session=None``) always."""

    async def has_grant(self, requester: str, tool: str, subject: str | None, session: str | None) -> bool:
        """Whether an "always" grant, or one for ``session``, covers this call."""

    # -- agents ---------------------------------------------------------------------------------
    async def put_agent_profile(self, name: str, profile: str, at: datetime) -> None:
        """Create or replace an agent's profile (JSON text)."""

    async def agent_profiles(self, name: str | None = None) -> list[str]:
        """Profiles (JSON text) by name; only ``name``'s when given."""

    async def delete_agent_profile(self, name: str) -> bool: ...

    async def put_task(self, record: TaskRecord) -> None: ...

    async def task(self, task_id: str) -> TaskRecord | None: ...

    async def tasks(self, agent: str | None, limit: int) -> list[TaskRecord]:
        """Newest first; with ``agent``, the tasks it delegated or was given."""

    async def lease_task(self, task_id: str, until: datetime) -> bool:
        """Hold an accepted task until ``until`` (its runner renews); False if it is not accepted."""

    async def lapsed_tasks(self, now: datetime, limit: int) -> list[TaskRecord]:
        """Accepted tasks whose lease ran out before ``now``: their runner is gone."""

    async def reclaim_task(
        self, task_id: str, lapsed_before: datetime, status: str, result: str | None, at: datetime
    ) -> bool:
        """Move an accepted task whose lease lapsed before ``lapsed_before`` to ``status``,
        counting the attempt and dropping the lease; False if it was renewed or moved meanwhile."""

    async def move_task(
        self, task_id: str, before: Sequence[str], status: str, result: str | None, at: datetime
    ) -> bool:
        """Move a task to ``status`` if it is in one of ``before`` (compare and set)."""

    # -- scheduled jobs -------------------------------------------------------------------------
    async def claim_job_run(self, job: str, tick: str, node: str, at: datetime) -> bool:
        """Record that ``node`` runs ``job`` for ``tick``; False when the tick was claimed before
        (by this node or another sharing the store)."""

    async def finish_job_run(
        self, job: str, tick: str, outcome: str, detail: str | None, at: datetime
    ) -> None: ...

    async def job_runs(self, job: str | None, limit: int) -> list[JobRunRecord]:
        """Newest first; only ``job``'s when given."""

    # -- memories: writes ----------------------------------------------------------------------
    async def write(
        self, records: Sequence[NewRecord], invalidate: Sequence[tuple[str, datetime]]
    ) -> list[Memory]:
        """Insert ``records`` and mark ``invalidate`` (id, invalid_at) in one transaction.

        Each new record gets the next sequence number (the node's change feed). A record whose
        (owner, zone, content_hash) matches a live memory is not inserted: the existing memory is
        returned in its place."""

    async def delete(self, ids: Sequence[str]) -> int:
        """Delete rows for good: row, full-text entry and vector, with no copy kept."""

    async def tombstone(self, ids: Sequence[str], hlc: int, at: datetime) -> int:
        """Erase content and embedding but keep id and version, so the deletion can replicate."""

    async def delete_owner(self, owner: str) -> int:
        """Delete every memory of ``owner`` (GDPR erasure)."""

    async def purge_expired(self, now: datetime) -> int: ...

    async def purge_tombstones(self, before: datetime) -> int: ...

    async def set_embeddings(self, items: Sequence[tuple[str, Vector]], model_id: str) -> None: ...

    # -- memories: reads -----------------------------------------------------------------------
    async def get(self, memory_id: str, viewer: Viewer) -> Memory | None: ...

    async def fetch(
        self, ids: Sequence[str], viewer: Viewer, filters: Filters, now: datetime
    ) -> list[Memory]:
        """The live memories among ``ids`` that ``viewer`` may see and that pass ``filters``."""

    async def list_memories(
        self, viewer: Viewer, filters: Filters, now: datetime, limit: int, after_seq: int | None
    ) -> list[Memory]:
        """Live memories in sequence order."""

    async def vector_candidates(
        self, vector: Vector, viewer: Viewer, filters: Filters, now: datetime, k: int
    ) -> list[Candidate]:
        """Up to ``k`` visible live memories nearest to ``vector`` (cosine similarity)."""

    async def text_candidates(
        self, terms: Sequence[str], viewer: Viewer, filters: Filters, now: datetime, k: int
    ) -> list[Candidate]:
        """Up to ``k`` visible live memories matching any of ``terms`` by BM25 (higher = better)."""

    async def expired_turns(self, now: datetime, limit: int) -> list[Memory]:
        """Expired, unencrypted thread memories not purged yet (their neighbours hold their text)."""

    async def thread_after(self, thread_id: str, owner: str, after_hlc: int, turns: int) -> list[Memory]:
        """The owner's next ``turns`` live, unencrypted memories of the thread after ``after_hlc``,
        oldest first: the turns whose full-text entry includes the one at ``after_hlc``."""

    async def reindex(self, texts: Sequence[tuple[str, str | None]]) -> None:
        """Replace what full-text search indexes for these memories (id, new index text)."""

    async def thread_context(self, thread_id: str, owner: str, before_hlc: int, turns: int) -> list[Memory]:
        """The ``turns`` latest plaintext memories of ``owner`` in a thread, created before
        ``before_hlc``, oldest first."""

    async def changes_since(self, seq: int, limit: int) -> list[Memory]:
        """Records (tombstones included) with a sequence number above ``seq``, in order."""

    def scan(self, batch: int) -> AsyncIterator[list[tuple[Memory, Vector | None]]]:
        """Every record with its embedding, in batches ordered by id (export, re-embedding)."""
        ...

    async def count(self) -> int: ...
