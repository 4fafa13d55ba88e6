-- The current version's lineage record (a materialization or an observation, as JSON with times
-- in epoch microseconds like the other columns), written in
-- the same transaction as the event, so reading every asset's current state is one value per
-- asset. Heads written before this column existed are filled in by the store when it opens.

ALTER TABLE asset_heads ADD COLUMN record TEXT;
