-- What federation may read: the federated zone only. Sync code reads this view, never the table,
-- so a private or shared memory cannot reach a peer whatever its query says.
CREATE VIEW federated_memories AS
SELECT id, seq, zone, owner, kind, content, tags, metadata, content_hash, importance, created_at,
       valid_at, invalid_at, expires_at, supersedes, thread_id, embed_model, encrypted, hlc, origin,
       tombstone, embedding
FROM memories
WHERE zone = 'federated' AND NOT encrypted;

-- How far this node has read each peer's change feed.
CREATE TABLE federation_cursors (
    peer text PRIMARY KEY,
    seq  bigint NOT NULL
);
