-- What a run did, step by step, and its log, so a run can be followed live and read back later,
-- whichever process ran it.

ALTER TABLE runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'materialize';   -- materialize | observe
ALTER TABLE runs ADD COLUMN stale_only BIGINT NOT NULL DEFAULT 0;       -- 1: only what is behind

-- One row per planned step, in plan order, written when the run is planned and updated as each
-- step starts and ends.
CREATE TABLE run_steps (
    run_id      TEXT NOT NULL REFERENCES runs (id),
    position    BIGINT NOT NULL,        -- 0-based, upstream first
    asset       TEXT NOT NULL,
    state       TEXT NOT NULL,          -- pending | running | materialized | skipped | failed
    started_at  BIGINT,
    finished_at BIGINT,
    message     TEXT,                   -- why it was skipped, or the error
    row_count   BIGINT,
    byte_size   BIGINT,
    PRIMARY KEY (run_id, position)
);
CREATE INDEX run_steps_by_asset ON run_steps (asset, state);

CREATE TABLE run_logs (
    run_id  TEXT NOT NULL REFERENCES runs (id),
    seq     BIGINT NOT NULL,            -- 1-based within the run
    at      BIGINT NOT NULL,
    level   TEXT NOT NULL,              -- info | warn | error
    asset   TEXT,
    message TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);

CREATE INDEX runs_by_status ON runs (status);
