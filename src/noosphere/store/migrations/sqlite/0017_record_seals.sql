-- A federated record's seal: the public key and signature of the node it comes from (its origin),
-- kept so this node can pass the record on and any node can check it; NULL for this node's own records (sealed when
-- served) and for records no origin sealed (a local admin's erasure of a peer's memory).
ALTER TABLE memories ADD COLUMN seal TEXT;

DROP VIEW federated_memories;
CREATE VIEW federated_memories AS
SELECT id, seq, zone, owner, kind, content, tags, metadata, content_hash, importance, created_at,
       valid_at, invalid_at, expires_at, supersedes, thread_id, embed_model, encrypted, hlc, origin,
       tombstone, embedding, seal
FROM memories
WHERE zone = 'federated' AND encrypted = 0;

CREATE INDEX memories_supersedes ON memories (supersedes) WHERE supersedes IS NOT NULL;

-- The highest sequence number of a federated tombstone purged (memory.tombstone_retention_days):
-- a peer that last read this node's feed below it has missed deletions and resynchronises.
CREATE TABLE federation_state (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO federation_state (name, value) VALUES ('horizon', 0);
