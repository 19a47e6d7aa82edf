-- Workers authenticate as principals of their own kind.
ALTER TABLE principals DROP CONSTRAINT principals_kind_check;
ALTER TABLE principals ADD CONSTRAINT principals_kind_check CHECK (kind IN ('admin', 'agent', 'user', 'worker'));
