-- Workers authenticate as principals of their own kind. SQLite cannot alter a CHECK constraint,
-- so the table is rebuilt.
CREATE TABLE principals_v3 (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('admin', 'agent', 'user', 'worker')),
    name       TEXT NOT NULL,
    level      TEXT,
    token_hash TEXT NOT NULL UNIQUE,
    key_salt   BLOB NOT NULL,
    created_at REAL NOT NULL,
    disabled   INTEGER NOT NULL DEFAULT 0
);
INSERT INTO principals_v3 SELECT id, kind, name, level, token_hash, key_salt, created_at, disabled FROM principals;
DROP TABLE principals;
ALTER TABLE principals_v3 RENAME TO principals;
