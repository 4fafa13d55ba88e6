-- Each partitioned asset's partitions: which have a version and which failed last, and per
-- partition its code version, the commit its inputs were read at and the commit its data last
-- changed at, in ranges, as compact bytes (see core/plan/src/partitions/codec.rs). `definition`
-- names the partitions definition the ordinals count, with its fingerprint.
CREATE TABLE partition_states (
    asset      TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    state      BLOB NOT NULL,
    updated_at BIGINT NOT NULL
);

-- The keys of dynamic partitions definitions, each with the ordinal it was given when added
-- (0, 1, 2, ... per definition); a removed key keeps its row (`removed_at`), so an ordinal is
-- never given to another key.
CREATE TABLE partition_keys (
    definition TEXT NOT NULL,
    ordinal    BIGINT NOT NULL,
    key        TEXT NOT NULL,
    added_at   BIGINT NOT NULL,
    removed_at BIGINT,
    PRIMARY KEY (definition, ordinal),
    UNIQUE (definition, key)
);
