-- The commit sequence of partition records: every partition recorded takes the next number (at
-- least the time of its commit in epoch microseconds, so that it also orders against whole
-- assets' versions). A partition's state keeps, per partition, the number its data last changed
-- at and the newest number among the inputs it read: one that is now higher means stale.
CREATE TABLE partition_sequence (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL
);
INSERT INTO partition_sequence (id, seq) VALUES (1, 0);

-- The code versions partitions of an asset were made with, numbered 1, 2, ... per asset in the
-- order first seen: a partition state keeps these numbers, not the versions' text.
CREATE TABLE partition_code_versions (
    asset        TEXT NOT NULL,
    id           BIGINT NOT NULL,
    code_version TEXT NOT NULL,
    PRIMARY KEY (asset, id),
    UNIQUE (asset, code_version)
);

-- A partitioned source is observed partition by partition too: each partition's observation
-- names its key ('' for the whole source).
ALTER TABLE observations ADD COLUMN partition_key TEXT NOT NULL DEFAULT '';
