-- A task being worked on holds a lease its runner renews; one whose lease lapsed (its node died)
-- is resumed or failed explicitly. attempts counts the runs that lapsed.
ALTER TABLE agent_tasks ADD COLUMN lease_until REAL;
ALTER TABLE agent_tasks ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
CREATE INDEX agent_tasks_lease ON agent_tasks (status, lease_until);
