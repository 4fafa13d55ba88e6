-- Each partitioned asset's partitions: which have a version and which failed last, and per
-- partition its code version, the commit its inputs were read at and the commit its data last
-- changed at, in ranges, as compact bytes (see core/plan/src/partitions/codec.rs). `definition`
-- names the partitions definition the ordinals count, with its fingerprint.
CREATE TABLE partition_states (
    asset      TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    state      BYTEA NOT NULL,
    updated_at BIGINT NOT NULL
);
