-- noosphere SQLite schema, version 1.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO counters (name, value) VALUES ('seq', 0);

CREATE TABLE principals (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('admin', 'agent', 'user')),
    name       TEXT NOT NULL,
    level      TEXT,
    token_hash TEXT NOT NULL UNIQUE,
    key_salt   BLOB NOT NULL,
    created_at REAL NOT NULL,
    disabled   INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE memories (
    rowid        INTEGER PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    seq          INTEGER NOT NULL UNIQUE,
    zone         TEXT NOT NULL CHECK (zone IN ('private', 'shared', 'federated')),
    owner        TEXT NOT NULL,
    kind         TEXT NOT NULL,
    content      TEXT NOT NULL,
    index_text   TEXT,
    tags         TEXT NOT NULL DEFAULT '[]',
    metadata     TEXT NOT NULL DEFAULT '{}',
    content_hash TEXT NOT NULL,
    importance   REAL NOT NULL,
    created_at   REAL NOT NULL,
    valid_at     REAL NOT NULL,
    invalid_at   REAL,
    expires_at   REAL,
    supersedes   TEXT,
    thread_id    TEXT,
    embedding    BLOB,
    embed_model  TEXT,
    encrypted    INTEGER NOT NULL DEFAULT 0,
    hlc          INTEGER NOT NULL,
    origin       TEXT NOT NULL,
    tombstone    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX memories_dedup ON memories (owner, zone, content_hash);
CREATE INDEX memories_owner ON memories (owner, seq);
CREATE INDEX memories_thread ON memories (thread_id, seq) WHERE thread_id IS NOT NULL;
CREATE INDEX memories_expires ON memories (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX memories_tombstones ON memories (invalid_at) WHERE tombstone = 1;

-- Full text over index_text (content plus thread context; NULL for ciphertext and tombstones).
-- External content: the text lives once, in memories; triggers keep the index in step.
CREATE VIRTUAL TABLE memories_fts USING fts5(
    index_text, content='memories', content_rowid='rowid',
    tokenize='unicode61 remove_diacritics 2'
);
CREATE TRIGGER memories_fts_insert AFTER INSERT ON memories WHEN new.index_text IS NOT NULL
BEGIN
    INSERT INTO memories_fts (rowid, index_text) VALUES (new.rowid, new.index_text);
END;
CREATE TRIGGER memories_fts_delete AFTER DELETE ON memories WHEN old.index_text IS NOT NULL
BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, index_text) VALUES ('delete', old.rowid, old.index_text);
END;
CREATE TRIGGER memories_fts_unindex AFTER UPDATE OF index_text ON memories WHEN old.index_text IS NOT NULL
BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, index_text) VALUES ('delete', old.rowid, old.index_text);
END;
CREATE TRIGGER memories_fts_reindex AFTER UPDATE OF index_text ON memories WHEN new.index_text IS NOT NULL
BEGIN
    INSERT INTO memories_fts (rowid, index_text) VALUES (new.rowid, new.index_text);
END;
