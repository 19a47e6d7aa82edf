-- The audit log: an append-only sequence of canonical JSON entries (leaf = RFC 9162 leaf hash)
-- and the signed tree heads over its prefixes.
CREATE TABLE audit_log (
    seq   bigint PRIMARY KEY,
    entry text NOT NULL,
    leaf  bytea NOT NULL
);

CREATE TABLE audit_heads (
    size      bigint PRIMARY KEY,
    root      bytea NOT NULL,
    at        timestamptz NOT NULL,
    signature bytea NOT NULL
);
