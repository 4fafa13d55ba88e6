-- Outputs as folders of Parquet files, with what was recorded about them, and garbage collection.

-- JSON: file count, schema and the asset's own metadata (NULL for versions written before).
ALTER TABLE materializations ADD COLUMN details TEXT;
-- When `freshet gc` removed the version's files (NULL while they exist).
ALTER TABLE materializations ADD COLUMN collected_at BIGINT;
