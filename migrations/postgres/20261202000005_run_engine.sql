-- The run engine: who runs each run and whether it is alive, cancel requests from any process,
-- every attempt of a step, and which run holds each asset while it computes it.

ALTER TABLE runs ADD COLUMN owner_host TEXT;            -- host of the process running it
ALTER TABLE runs ADD COLUMN owner_pid BIGINT;           -- its process id on that host
ALTER TABLE runs ADD COLUMN heartbeat_at BIGINT;        -- the owner's latest sign of life
ALTER TABLE runs ADD COLUMN cancel_requested_at BIGINT; -- set by any process; the owner stops it

-- One row per attempt at a step, in order; `error` is NULL for the attempt that succeeded.
CREATE TABLE step_attempts (
    run_id      TEXT NOT NULL REFERENCES runs (id),
    position    BIGINT NOT NULL,
    attempt     BIGINT NOT NULL,       -- 1-based
    started_at  BIGINT NOT NULL,
    finished_at BIGINT,
    error       TEXT,
    PRIMARY KEY (run_id, position, attempt)
);

-- Single flight: the run computing an asset now. A lease is held while its run is running with
-- a fresh heartbeat; a lease of a dead run may be taken over.
CREATE TABLE asset_leases (
    asset       TEXT PRIMARY KEY,
    run_id      TEXT NOT NULL,
    acquired_at BIGINT NOT NULL
);

-- Content fingerprints of source files by location: a source's data version is a fingerprint of
-- its content, and a file is read again only when its metadata (size, e-tag or modification
-- time) changes.
CREATE TABLE source_files (
    location     TEXT PRIMARY KEY,
    meta         TEXT NOT NULL,
    content_hash TEXT NOT NULL
);
