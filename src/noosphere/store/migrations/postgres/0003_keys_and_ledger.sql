-- User API keys with limits, per-request usage, and the double-entry credit ledger.
CREATE TABLE api_keys (
    id         text PRIMARY KEY,
    user_id    text NOT NULL,
    name       text NOT NULL,
    token_hash text NOT NULL UNIQUE,
    key_salt   bytea NOT NULL,
    rpm        integer,
    tpm        integer,
    budget     double precision,
    created_at timestamptz NOT NULL,
    revoked    boolean NOT NULL DEFAULT false
);
CREATE INDEX api_keys_user ON api_keys (user_id);

CREATE TABLE usage_requests (
    id                  text PRIMARY KEY,
    at                  timestamptz NOT NULL,
    principal           text NOT NULL,
    key_id              text,
    model               text NOT NULL,
    worker              text,
    prompt_tokens       integer NOT NULL,
    completion_tokens   integer NOT NULL,
    reported_prompt     integer,
    reported_completion integer,
    credits             double precision NOT NULL,
    status              text NOT NULL
);
CREATE INDEX usage_requests_at ON usage_requests (at);

-- Every request moves credits from the caller's account to the worker's: its entries sum to 0.
CREATE TABLE ledger_entries (
    id         bigserial PRIMARY KEY,
    request_id text NOT NULL REFERENCES usage_requests (id),
    at         timestamptz NOT NULL,
    account    text NOT NULL,
    amount     double precision NOT NULL
);
CREATE INDEX ledger_entries_account ON ledger_entries (account);
