-- User API keys with limits, per-request usage, and the double-entry credit ledger.
CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    name       TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    key_salt   BLOB NOT NULL,
    rpm        INTEGER,
    tpm        INTEGER,
    budget     REAL,
    created_at REAL NOT NULL,
    revoked    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX api_keys_user ON api_keys (user_id);

CREATE TABLE usage_requests (
    id                  TEXT PRIMARY KEY,
    at                  REAL NOT NULL,
    principal           TEXT NOT NULL,
    key_id              TEXT,
    model               TEXT NOT NULL,
    worker              TEXT,
    prompt_tokens       INTEGER NOT NULL,
    completion_tokens   INTEGER NOT NULL,
    reported_prompt     INTEGER,
    reported_completion INTEGER,
    credits             REAL NOT NULL,
    status              TEXT NOT NULL
);
CREATE INDEX usage_requests_at ON usage_requests (at);

-- Every request moves credits from the caller's account to the worker's: its entries sum to 0.
CREATE TABLE ledger_entries (
    id         INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL REFERENCES usage_requests (id),
    at         REAL NOT NULL,
    account    TEXT NOT NULL,
    amount     REAL NOT NULL
);
CREATE INDEX ledger_entries_account ON ledger_entries (account);
