-- noosphere PostgreSQL schema, version 1.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);

CREATE SEQUENCE memory_seq;

CREATE TABLE principals (
    id         text PRIMARY KEY,
    kind       text NOT NULL CHECK (kind IN ('admin', 'agent', 'user')),
    name       text NOT NULL,
    level      text,
    token_hash text NOT NULL UNIQUE,
    key_salt   bytea NOT NULL,
    created_at timestamptz NOT NULL,
    disabled   boolean NOT NULL DEFAULT false
);

CREATE TABLE memories (
    pk           bigserial PRIMARY KEY,
    id           text NOT NULL UNIQUE,
    seq          bigint NOT NULL UNIQUE,
    zone         text NOT NULL CHECK (zone IN ('private', 'shared', 'federated')),
    owner        text NOT NULL,
    kind         text NOT NULL,
    content      text NOT NULL,
    index_text   text,
    tags         text[] NOT NULL DEFAULT '{}',
    metadata     jsonb NOT NULL DEFAULT '{}',
    content_hash text NOT NULL,
    importance   real NOT NULL,
    created_at   timestamptz NOT NULL,
    valid_at     timestamptz NOT NULL,
    invalid_at   timestamptz,
    expires_at   timestamptz,
    supersedes   text,
    thread_id    text,
    embedding    vector,
    embed_model  text,
    encrypted    boolean NOT NULL DEFAULT false,
    hlc          bigint NOT NULL,
    origin       text NOT NULL,
    tombstone    boolean NOT NULL DEFAULT false,
    tsv          tsvector GENERATED ALWAYS AS (to_tsvector('simple', coalesce(index_text, ''))) STORED
);
CREATE INDEX memories_dedup ON memories (owner, zone, content_hash);
CREATE INDEX memories_owner ON memories (owner, seq);
CREATE INDEX memories_thread ON memories (thread_id, hlc) WHERE thread_id IS NOT NULL;
CREATE INDEX memories_expires ON memories (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX memories_tsv ON memories USING gin (tsv);
CREATE INDEX memories_tags ON memories USING gin (tags);
CREATE INDEX memories_metadata ON memories USING gin (metadata jsonb_path_ops);
-- The HNSW index needs a fixed dimension; it is (re)built when the store is bound to an embedder.
