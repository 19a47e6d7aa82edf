-- Agent profiles (what an agent is: level, capabilities, model, soul, tools, zones, budgets) and
-- delegated tasks (TASK_DELEGATE → ACCEPT/REJECT → COMPLETE), queryable by either side.
CREATE TABLE agent_profiles (
    name       TEXT PRIMARY KEY,
    profile    TEXT NOT NULL,       -- JSON, validated by noosphere.agents.profile.AgentProfile
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE agent_tasks (
    id         TEXT PRIMARY KEY,
    delegator  TEXT NOT NULL,
    assignee   TEXT NOT NULL,
    task       TEXT NOT NULL,
    status     TEXT NOT NULL,       -- delegated | accepted | rejected | completed | failed
    result     TEXT,
    session    TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX agent_tasks_delegator ON agent_tasks (delegator, created_at);
CREATE INDEX agent_tasks_assignee ON agent_tasks (assignee, created_at);
