-- Peers added at run time (`noosphere peers add`), beside those of the config file.
CREATE TABLE federation_peers (
    id         text PRIMARY KEY,
    public_key text NOT NULL,
    url        text NOT NULL,
    added_at   timestamptz NOT NULL
);

-- The kill switch (`noosphere federation pause`): a peer's id, or '*' for all federation.
CREATE TABLE federation_pauses (
    target text PRIMARY KEY
);
