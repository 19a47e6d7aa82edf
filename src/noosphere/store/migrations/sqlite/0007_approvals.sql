-- Human checkpoints: one row per call that policy sent to a human, and the standing grants that
-- "approve for the session" and "approve always" leave behind.
CREATE TABLE approvals (
    id          TEXT PRIMARY KEY,
    requester   TEXT NOT NULL,
    level       TEXT,
    tool        TEXT NOT NULL,
    subject     TEXT,
    args_digest TEXT NOT NULL,
    impact      REAL NOT NULL,
    reason      TEXT NOT NULL,
    session     TEXT,
    status      TEXT NOT NULL,      -- pending | approved | rejected | timeout | escalated
    created_at  REAL NOT NULL,
    expires_at  REAL NOT NULL,
    decided_by  TEXT,
    decided_at  REAL,
    scope       TEXT,               -- once | session | always (when approved)
    note        TEXT,
    escalated_from TEXT             -- the approval this one escalates (decided by the admin)
);

CREATE INDEX approvals_pending ON approvals (expires_at) WHERE status = 'pending';
CREATE INDEX approvals_created ON approvals (created_at);

CREATE TABLE approval_grants (
    requester  TEXT NOT NULL,
    tool       TEXT NOT NULL,
    subject    TEXT NOT NULL,       -- '' when the call has no subject
    session    TEXT NOT NULL,       -- '' for "always"
    granted_by TEXT NOT NULL,
    granted_at REAL NOT NULL,
    PRIMARY KEY (requester, tool, subject, session)
);
