-- Scheduled job runs. The primary key is the lock: a tick (a cron time, or the id of the message
-- that triggered the job) is claimed by inserting its row, so it runs once however many node
-- processes share the store.
CREATE TABLE job_runs (
    job         TEXT NOT NULL,
    tick        TEXT NOT NULL,
    node        TEXT NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    outcome     TEXT NOT NULL,      -- running | ok | failed | denied | cancelled
    detail      TEXT,
    PRIMARY KEY (job, tick)
);

CREATE INDEX job_runs_started ON job_runs (started_at);
