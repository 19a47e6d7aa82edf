"""A node: the services of one noosphere process, built from settings and opened together.

The HTTP app, the MCP stdio server and the CLI all use a ``Node``; none of them builds services
on their own.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from noosphere.agents.registry import AgentRegistry
from noosphere.auth.conversation_key import ConversationKeys
from noosphere.auth.principal import ADMIN_ID, Principal, PrincipalKind, principal_id
from noosphere.auth.tokens import TokenAuthority
from noosphere.bus import Bus, create_transport
from noosphere.config import Settings
from noosphere.embeddings import Embedder, create_embedder
from noosphere.errors import ConfigError, NotFound
from noosphere.governance.actions import Governor
from noosphere.governance.audit import AuditLog
from noosphere.governance.checkpoints import Checkpoints
from noosphere.governance.gate import Gate
from noosphere.governance.head_file import HEAD_FILE
from noosphere.identity import KEY_FILE, NodeKey, load_or_create
from noosphere.memory.service import MemoryService
from noosphere.store import MemoryStore, create_store

logger = logging.getLogger(__name__)
PROGRESS_EVERY = 5.0  # seconds between progress lines of long work at open


class _Progress:
    """Logs how far a long step at open has got, every few seconds."""

    def __init__(self, what: str) -> None:
        self.what, self._last = what, time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        if time.monotonic() - self._last >= PROGRESS_EVERY:
            self._last = time.monotonic()
            logger.info("%s: %d of %d", self.what, done, total)


@dataclass
class Node:
    settings: Settings
    store: MemoryStore
    auth: TokenAuthority
    memory: MemoryService
    key: NodeKey  # the node's Ed25519 identity
    audit: AuditLog
    bus: Bus
    checkpoints: Checkpoints  # human approvals
    agents: AgentRegistry
    governor: Governor  # the gate for calls from outside the node (MCP, REST, CLI)
    keys: ConversationKeys  # conversation keys, from secrets people send with their requests
    new_admin_token: str | None = None  # set when this start created the admin credential

    async def authenticate(self, token: str | None, secret: str | None = None) -> Principal:
        """The caller of ``token``; with ``secret``, holding its conversation key."""
        principal = await self.auth.authenticate(token)
        return principal if secret is None else await self.keys.unlock(principal, secret)

    async def remove(self, kind: PrincipalKind, name: str, by: str = ADMIN_ID) -> int:
        """Delete a user, agent or worker with everything it owned — its memories (erased from
        disk), standing approval grants, mailbox, subscriptions and API keys — so a principal
        created later under the same name starts with nothing. Audited; returns the records gone."""
        principal = principal_id(kind, name)
        if await self.store.principal(principal) is None:
            raise NotFound(f"no {kind.value} named {name!r}")
        if kind is PrincipalKind.AGENT:
            await self.agents.delete(name)
        else:
            await self.auth.delete(kind, name)
        mailbox = name if kind is PrincipalKind.AGENT else principal
        removed = await self.store.delete_owner(principal) + await self.store.forget_principal(
            principal, mailbox
        )
        await self.audit.append(
            by, "principal", {"event": "deleted", "principal": principal, "records": removed}
        )
        return removed

    async def reset_secret(self, name: str, by: str = ADMIN_ID) -> bool:
        """Let a user who lost their conversation secret choose a new one (what was sealed under
        the old one stays sealed). Audited; False if they had none yet."""
        reset = await self.keys.reset(principal_id(PrincipalKind.USER, name))
        if reset:
            await self.audit.append(by, "principal", {"event": "secret_reset", "principal": name})
        return reset


def private_directory(path: Path) -> None:
    """Create the data directory readable by its owner only (0700), and tighten one that is not:
    it holds the database, the node's private key and the admin token."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    status = path.stat()
    if status.st_mode & 0o077 and status.st_uid == os.getuid():
        path.chmod(0o700)


async def _same_identity(store: MemoryStore, key: NodeKey, data_dir: Path) -> None:
    """Every process of a cluster is one node and signs as one: the first to start records its
    key's identity in the shared store; a process with another key is refused."""
    from noosphere.store.postgres.cluster import PostgresCluster

    assert isinstance(store, PostgresCluster)  # a cluster's settings choose PostgreSQL
    recorded = await store.claim_identity(key.id, key.public_text)
    if recorded != key.id:
        raise ConfigError(
            f"this process's node key ({key.id}, in {data_dir / KEY_FILE}) is not the cluster's "
            f"({recorded}): every process of a cluster signs as one node. Copy {KEY_FILE} from the "
            f"data directory of a process already in the cluster into {data_dir}."
        )


@asynccontextmanager
async def open_node(
    settings: Settings, embedder: Embedder | None = None, check_embedder: bool = True
) -> AsyncIterator[Node]:
    """Open the store (migrating it), bind the embedder, make sure an admin exists; close on exit.

    ``check_embedder=False`` skips the embedder binding check (used by ``memory reembed``)."""
    private_directory(settings.data_dir)
    store = create_store(settings)
    await store.open()
    own_embedder = embedder is None
    chosen = embedder or create_embedder(settings.embeddings)
    try:
        auth = TokenAuthority(store, settings.auth.cache_seconds)
        key = load_or_create(settings.data_dir)
        if settings.cluster is not None:
            await _same_identity(store, key, settings.data_dir)
        memory = MemoryService(store, chosen, settings.memory, key.id)
        if check_embedder:
            await memory.check_embedder()
            reindexed = await memory.check_index(_Progress("rebuilding the full-text index"))
            if reindexed:
                logger.info("full-text index rebuilt for %d memories (%s)", reindexed, memory.index_format)
        await memory.resume_clock()
        new_token = await auth.ensure_admin(settings.auth.admin_token, settings.data_dir)
        agents = AgentRegistry(store, auth, settings.auth.cache_seconds)
        for profile in settings.agents:
            await agents.declare(profile)
        audit = AuditLog(store, key, settings.data_dir / HEAD_FILE)
        # The bus connects on first use (the NATS transport reaches out to a server; a CLI command
        # that never touches the bus should not). `noosphere up` starts it eagerly to fail fast.
        bus = Bus(create_transport(settings.bus, store), settings.bus, audit)
        try:
            checkpoints = Checkpoints(store, audit, settings.governance, deciders=agents.deciders)
            governor = Governor(
                Gate(checkpoints, audit), settings.governance, agents, settings.governance.caller_wait_seconds
            )
            keys = ConversationKeys(store, settings.auth.cache_seconds)
            yield Node(
                settings, store, auth, memory, key, audit, bus, checkpoints, agents, governor, keys, new_token
            )
        finally:
            await bus.close()
            await audit.close()
    finally:
        if own_embedder:
            chosen.close()
        await store.close()
