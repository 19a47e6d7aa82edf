-- Several node processes behaving as one node (docs/cluster.md). Times come from the database's
-- clock, so processes on machines whose clocks disagree still agree on who is alive.

-- The processes of the cluster: each start registers a new id and renews seen_at every heartbeat.
CREATE TABLE cluster_processes (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    url TEXT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    seen_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Once-per-cluster work (a sweep, the audit signer, serving one agent): held by one process
-- until it expires unrenewed.
CREATE TABLE cluster_leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

-- The identity every process must share (its Ed25519 public key): one row.
CREATE TABLE cluster_identity (
    one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    node_id TEXT NOT NULL,
    public_key TEXT NOT NULL
);

-- Fairness: each user's virtual token counter (weighted service received), shared.
CREATE TABLE fair_counters (
    principal TEXT PRIMARY KEY,
    service DOUBLE PRECISION NOT NULL
);

-- Rate limits: the last minute of each limited key, one row per second (since the epoch,
-- database clock) with the requests admitted and the tokens counted in it.
CREATE TABLE rate_seconds (
    key_id TEXT NOT NULL,
    second BIGINT NOT NULL,
    requests INTEGER NOT NULL DEFAULT 0,
    tokens BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (key_id, second)
);

-- Budgets: credits held by requests in flight, per paying account and the process holding them:
-- reserved while they run, pending once answered until their usage is written.
CREATE TABLE credit_holds (
    account TEXT NOT NULL,
    process TEXT NOT NULL,
    reserved DOUBLE PRECISION NOT NULL DEFAULT 0,
    pending DOUBLE PRECISION NOT NULL DEFAULT 0,
    PRIMARY KEY (account, process)
);

-- What the cluster must see only once, whichever process it reaches (a peer's request nonce, a
-- forwarded chat's idempotency key), until forget_at (seconds since the epoch).
CREATE TABLE cluster_once (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    forget_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (scope, key)
);
