-- The arguments of the call an approval asks about, as the agent sent them (canonical JSON), so
-- the person deciding sees what would run, not only its digest. NULL for requests made before.
ALTER TABLE approvals ADD COLUMN args TEXT;
