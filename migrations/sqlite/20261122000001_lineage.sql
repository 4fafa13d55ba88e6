-- Lineage metadata. Portable between SQLite and PostgreSQL: text ids (UUIDv7), BIGINT epoch
-- microseconds for times, no autoincrement, no engine-specific types.

CREATE TABLE runs (
    id          TEXT PRIMARY KEY,
    status      TEXT NOT NULL,          -- running | succeeded | failed
    selection   TEXT NOT NULL,          -- what was asked for, as typed ('' = everything stale)
    started_at  BIGINT NOT NULL,
    finished_at BIGINT,
    error       TEXT
);

CREATE TABLE materializations (
    id            TEXT PRIMARY KEY,
    asset         TEXT NOT NULL,
    partition_key TEXT NOT NULL DEFAULT '',   -- '' for unpartitioned assets
    run_id        TEXT NOT NULL REFERENCES runs (id),
    code_version  TEXT NOT NULL,
    data_version  TEXT NOT NULL,
    location      TEXT NOT NULL,              -- URL of the immutable Parquet object
    row_count     BIGINT NOT NULL,
    byte_size     BIGINT NOT NULL,
    duration_us   BIGINT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX materializations_by_asset ON materializations (asset, partition_key, created_at);

-- The data version of every input a materialization read.
CREATE TABLE materialization_inputs (
    materialization_id TEXT NOT NULL REFERENCES materializations (id),
    input_asset        TEXT NOT NULL,
    data_version       TEXT NOT NULL,
    PRIMARY KEY (materialization_id, input_asset)
);

-- A source's data version each time it was seen to change.
CREATE TABLE observations (
    id           TEXT PRIMARY KEY,
    asset        TEXT NOT NULL,
    data_version TEXT NOT NULL,
    file_count   BIGINT NOT NULL,
    byte_size    BIGINT NOT NULL,
    observed_at  BIGINT NOT NULL
);
CREATE INDEX observations_by_asset ON observations (asset, observed_at);

-- The current version of each asset: written in the same transaction as the event it points to,
-- so an output becomes current only once it is fully written and recorded. Exactly one of
-- materialization_id (assets) and observation_id (sources) is set.
CREATE TABLE asset_heads (
    asset              TEXT NOT NULL,
    partition_key      TEXT NOT NULL DEFAULT '',
    materialization_id TEXT REFERENCES materializations (id),
    observation_id     TEXT REFERENCES observations (id),
    updated_at         BIGINT NOT NULL,
    PRIMARY KEY (asset, partition_key)
);
