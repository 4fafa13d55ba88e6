-- Automation: what triggered each run, every evaluation of the assets' conditions, each asset's
-- latest decision with what automation remembers of it, the history of decisions as they
-- changed, and each schedule's latest tick.

ALTER TABLE runs ADD COLUMN triggered_by TEXT NOT NULL DEFAULT 'cli';  -- cli, api, automation, schedule NAME

CREATE TABLE automation_evaluations (
    id           TEXT PRIMARY KEY,     -- UUIDv7, time-ordered
    evaluated_at BIGINT NOT NULL,
    duration_us  BIGINT NOT NULL,
    assets       BIGINT NOT NULL,      -- assets with a condition
    requested    BIGINT NOT NULL,      -- of which requested
    run_id       TEXT,                 -- the run the requests became
    next_at      BIGINT                -- when time alone may change a decision
);

-- The latest decision per asset, and the cursor (JSON) the next evaluation starts from.
CREATE TABLE automation_assets (
    asset         TEXT PRIMARY KEY,
    condition     TEXT NOT NULL,
    evaluation_id TEXT NOT NULL,
    decided_at    BIGINT NOT NULL,
    requested     BIGINT NOT NULL,     -- 0 or 1
    reason        TEXT NOT NULL,
    run_id        TEXT,
    cursor        TEXT NOT NULL
);

-- Every decision that differed from the asset's previous one.
CREATE TABLE automation_decisions (
    evaluation_id TEXT NOT NULL,
    asset         TEXT NOT NULL,
    decided_at    BIGINT NOT NULL,
    requested     BIGINT NOT NULL,
    reason        TEXT NOT NULL,
    run_id        TEXT,
    PRIMARY KEY (evaluation_id, asset)
);
CREATE INDEX automation_decisions_by_asset ON automation_decisions (asset, decided_at);

CREATE TABLE schedule_ticks (
    name       TEXT PRIMARY KEY,
    tick_at    BIGINT NOT NULL,        -- the latest tick handled
    run_id     TEXT,                   -- the run it requested, if any
    handled_at BIGINT NOT NULL
);

-- Automation keeps the lineage in memory and reads only the heads that moved.
CREATE INDEX asset_heads_by_update ON asset_heads (updated_at);

-- Custom sensors: the cursor each returned last, and when it was called.
CREATE TABLE sensor_cursors (
    name         TEXT PRIMARY KEY,
    cursor       TEXT,
    evaluated_at BIGINT NOT NULL
);

-- The one process that runs automation on this store now (a daemon or a server), and its
-- latest sign of life: others leave automation to it until it goes silent.
CREATE TABLE automation_owner (
    id           BIGINT PRIMARY KEY,   -- always 1
    owner_host   TEXT NOT NULL,
    owner_pid    BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);

-- Each asset's latest failure, which automation reads at every evaluation, without scanning every
-- step ever run.
CREATE INDEX run_steps_by_state ON run_steps (state, asset);
