-- What this node last verified of each peer's audit log (it witnesses them): the newest signed
-- tree head it checked to be consistent with every earlier one, and, if a peer's log ever failed
-- that check, the problem and the two signed heads that prove it.
CREATE TABLE federation_witness (
    peer       text PRIMARY KEY,
    size       bigint NOT NULL,
    root       bytea NOT NULL,
    at         timestamptz NOT NULL,
    signature  bytea NOT NULL,
    checked_at timestamptz NOT NULL,
    problem    text,
    evidence   text
);
