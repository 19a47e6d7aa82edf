-- The model names a worker's token may announce (JSON list); NULL: any.
ALTER TABLE principals ADD COLUMN models TEXT;
