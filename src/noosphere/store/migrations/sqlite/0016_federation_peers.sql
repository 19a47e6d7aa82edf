-- Peers added at run time (`noosphere peers add`), beside those of the config file.
CREATE TABLE federation_peers (
    id         TEXT PRIMARY KEY,
    public_key TEXT NOT NULL,
    url        TEXT NOT NULL,
    added_at   REAL NOT NULL
);

-- The kill switch (`noosphere federation pause`): a peer's id, or '*' for all federation.
CREATE TABLE federation_pauses (
    target TEXT PRIMARY KEY
);
