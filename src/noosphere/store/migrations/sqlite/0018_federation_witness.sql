-- What this node last verified of each peer's audit log (it witnesses them): the newest signed
-- tree head it checked to be consistent with every earlier one, and, if a peer's log ever failed
-- that check, the problem and the two signed heads that prove it.
CREATE TABLE federation_witness (
    peer       TEXT PRIMARY KEY,
    size       INTEGER NOT NULL,
    root       BLOB NOT NULL,
    at         REAL NOT NULL,
    signature  BLOB NOT NULL,
    checked_at REAL NOT NULL,
    problem    TEXT,
    evidence   TEXT
);
