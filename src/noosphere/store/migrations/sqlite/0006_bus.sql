-- The message bus: per-recipient mailboxes and topic subscriptions. A row stays after its ack
-- (state 'acked') for the retention window, so a resent id is recognised and not delivered twice.
CREATE TABLE mailbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    mailbox    TEXT NOT NULL,
    id         TEXT NOT NULL,
    priority   INTEGER NOT NULL,
    state      TEXT NOT NULL DEFAULT 'ready',   -- ready | acked | dead
    visible_at REAL NOT NULL,                   -- leased until (after a delivery) or not before
    expires_at REAL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    done_at    REAL,                            -- when acked or set aside as dead
    body       TEXT NOT NULL,                   -- the envelope, JSON
    UNIQUE (mailbox, id)
);

CREATE INDEX mailbox_ready ON mailbox (mailbox, priority DESC, seq) WHERE state = 'ready';
CREATE INDEX mailbox_done ON mailbox (done_at) WHERE state <> 'ready';

CREATE TABLE subscriptions (
    subscriber TEXT NOT NULL,
    pattern    TEXT NOT NULL,
    PRIMARY KEY (subscriber, pattern)
);
