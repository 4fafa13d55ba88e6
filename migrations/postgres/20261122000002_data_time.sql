-- Data time and source checks (see the freshness module): when a materialization's oldest source
-- data dates from, and when a source was last seen unchanged.

ALTER TABLE materializations ADD COLUMN data_time BIGINT;   -- NULL when an input's was unknown
ALTER TABLE observations ADD COLUMN checked_at BIGINT;      -- NULL: never re-checked (= observed_at)
