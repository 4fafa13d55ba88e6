-- Several processes on one database, and history that stays fast as it grows.

-- `freshet gc` removes the log lines of runs that ended before its `[gc] run_logs` retention.
CREATE INDEX runs_by_finished ON runs (finished_at);
