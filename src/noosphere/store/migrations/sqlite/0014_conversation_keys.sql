-- The salt of each person's conversation key and a check value that tells a wrong secret from the
-- right one. The key itself derives from a secret only its owner holds and is never stored.
CREATE TABLE conversation_keys (
    principal_id TEXT PRIMARY KEY,
    salt         BLOB NOT NULL,
    check_value  TEXT NOT NULL,
    created_at   REAL NOT NULL
);
