-- The model names a worker's token may announce; NULL: any.
ALTER TABLE principals ADD COLUMN models text[];
