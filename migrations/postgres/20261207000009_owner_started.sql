-- The start time of a run's owner process (clock ticks since boot, Linux), so that a pid
-- reused by another process is not taken for the owner.
ALTER TABLE runs ADD COLUMN owner_started BIGINT;
