-- The audit log: an append-only sequence of canonical JSON entries (leaf = RFC 9162 leaf hash)
-- and the signed tree heads over its prefixes.
CREATE TABLE audit_log (
    seq   INTEGER PRIMARY KEY,
    entry TEXT NOT NULL,
    leaf  BLOB NOT NULL
);

CREATE TABLE audit_heads (
    size      INTEGER PRIMARY KEY,
    root      BLOB NOT NULL,
    at        REAL NOT NULL,
    signature BLOB NOT NULL
);
