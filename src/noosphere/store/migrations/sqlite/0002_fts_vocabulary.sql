-- Per-term document counts of the full-text index, for pruning very common query words.
CREATE VIRTUAL TABLE memories_fts_vocab USING fts5vocab(memories_fts, 'row');
