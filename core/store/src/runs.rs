//! Run records: each run's kind, status and steps, and its log, written as the run goes so that
//! any process (the web view, `freshet` in another terminal) can follow it and read it back.

use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;

use freshet_plan::model::{AssetKey, RunId};

use crate::history::Page;
use crate::lifecycle::{LogLevel, RunKind, RunStatus, StepState};
use crate::{Error, Result, Store, from_i64, from_micros, get, micros, store_error, to_i64};

/// How many steps of a run ended which way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepCounts {
    /// Planned steps.
    pub total: u64,
    /// Materialized.
    pub materialized: u64,
    /// Skipped.
    pub skipped: u64,
    /// Failed.
    pub failed: u64,
    /// Cancelled while they ran.
    pub cancelled: u64,
}

/// One run as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// Its id.
    pub id: RunId,
    /// Materialize or observe.
    pub kind: RunKind,
    /// Where it is.
    pub status: RunStatus,
    /// What was asked for, as typed (`''`: everything behind, or every source).
    pub selection: String,
    /// Whether only what is behind was asked for.
    pub stale_only: bool,
    /// When it was requested, then when it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Why it failed, in one line.
    pub error: Option<String>,
    /// Its steps by outcome.
    pub steps: StepCounts,
    /// What asked for it: `cli`, `api`, `automation`, `schedule NAME`.
    pub triggered_by: String,
}

/// A run to record: what it does and what asked for it.
#[derive(Debug, Clone, Copy)]
pub struct NewRun<'a> {
    /// Materialize or observe.
    pub kind: RunKind,
    /// What was asked for, as typed.
    pub selection: &'a str,
    /// Whether only what is behind was asked for.
    pub stale_only: bool,
    /// What asked: `cli`, `api`, `automation`, `schedule NAME`.
    pub triggered_by: &'a str,
}

/// One step of a run as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    /// The asset.
    pub asset: String,
    /// Where it is.
    pub state: StepState,
    /// When it started computing.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Why it was skipped, or its error.
    pub message: Option<String>,
    /// Rows written.
    pub row_count: Option<u64>,
    /// Bytes written.
    pub byte_size: Option<u64>,
}

/// One line of a run's log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    /// 1-based within the run.
    pub seq: u64,
    /// When it was written.
    pub at: DateTime<Utc>,
    /// How much it matters.
    pub level: LogLevel,
    /// The asset it is about, if one.
    pub asset: Option<String>,
    /// In words.
    pub message: String,
}

/// Which runs to list: newest first (by id, which is time-ordered and never changes), a page of
/// `limit`, older than `before` (a previous page's last run), optionally only with one status or
/// touching one asset.
#[derive(Debug, Clone, Default)]
pub struct RunQuery {
    /// At most this many.
    pub limit: u32,
    /// Only runs requested before this one.
    pub before: Option<RunId>,
    /// Only runs with this status.
    pub status: Option<RunStatus>,
    /// Only runs with a step for this asset.
    pub asset: Option<AssetKey>,
}

/// The latest failed attempt at an asset after its current version.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// The asset.
    pub asset: String,
    /// The run it failed in.
    pub run_id: RunId,
    /// When.
    pub at: DateTime<Utc>,
    /// The error, in one line.
    pub error: String,
}

/// `SELECT <a run and its step counts> FROM runs r <rest>`, as one static string.
macro_rules! select_runs {
    ($rest:literal) => {
        concat!(
            "SELECT r.id, r.kind, r.status, r.selection, r.stale_only, r.started_at, \
             r.finished_at, r.error, \
             (SELECT COUNT(*) FROM run_steps s WHERE s.run_id = r.id), \
             (SELECT COUNT(*) FROM run_steps s WHERE s.run_id = r.id AND s.state = 'materialized'), \
             (SELECT COUNT(*) FROM run_steps s WHERE s.run_id = r.id AND s.state = 'skipped'), \
             (SELECT COUNT(*) FROM run_steps s WHERE s.run_id = r.id AND s.state = 'failed'), \
             r.triggered_by, \
             (SELECT COUNT(*) FROM run_steps s WHERE s.run_id = r.id AND s.state = 'cancelled') \
             FROM runs r ",
            $rest
        )
    };
}

impl Store {
    /// Records the start of a run that starts now.
    pub async fn begin_run(
        &self,
        id: &RunId,
        run: &NewRun<'_>,
        started_at: DateTime<Utc>,
    ) -> Result<()> {
        self.insert_run(id, run, RunStatus::Running, started_at)
            .await
    }

    /// Records a requested run that waits for its turn; [`Store::start_run`] starts it.
    pub async fn queue_run(&self, id: &RunId, run: &NewRun<'_>, at: DateTime<Utc>) -> Result<()> {
        self.insert_run(id, run, RunStatus::Queued, at).await
    }

    async fn insert_run(
        &self,
        id: &RunId,
        run: &NewRun<'_>,
        status: RunStatus,
        at: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO runs (id, kind, status, selection, stale_only, started_at, owner_host, \
             owner_pid, heartbeat_at, triggered_by, owner_started) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $6, $9, $10)",
        )
        .bind(id.as_str())
        .bind(run.kind.as_str())
        .bind(status.as_str())
        .bind(run.selection)
        .bind(i64::from(run.stale_only))
        .bind(micros(at))
        .bind(self.owner.host.as_str())
        .bind(i64::from(self.owner.pid))
        .bind(run.triggered_by)
        .bind(self.owner.started.and_then(|s| i64::try_from(s).ok()))
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    /// Marks a queued run as running from `at`. Refused unless the run is queued.
    pub async fn start_run(&self, id: &RunId, at: DateTime<Utc>) -> Result<()> {
        self.move_run(id, RunStatus::Running, at, None).await
    }

    /// Records how a run ended. Refused (an [`Error::Transition`]) when the run already ended or
    /// `status` is not an end the lifecycle allows from where it is.
    pub async fn finish_run(
        &self,
        id: &RunId,
        status: RunStatus,
        finished_at: DateTime<Utc>,
        error: Option<&str>,
    ) -> Result<()> {
        if !status.is_finished() {
            return Err(Error::Transition {
                run: id.to_string(),
                message: format!("{} is not how a run ends", status.as_str()),
            });
        }
        self.move_run(id, status, finished_at, error).await?;
        // A finished run holds no asset.
        sqlx::query("DELETE FROM asset_leases WHERE run_id = $1")
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// Moves a run to `to` at `at` in one conditional statement: only from a status
    /// [`RunStatus::comes_from`] allows. Starting sets `started_at`; ending sets `finished_at`
    /// and the error.
    async fn move_run(
        &self,
        id: &RunId,
        to: RunStatus,
        at: DateTime<Utc>,
        error: Option<&str>,
    ) -> Result<()> {
        let from = to.comes_from();
        if from.is_empty() {
            return Err(refused(id, to.as_str()));
        }
        let set = if to.is_finished() {
            "finished_at = $2"
        } else {
            "started_at = $2, heartbeat_at = $2"
        };
        let sql = format!(
            "UPDATE runs SET status = $1, {set}, error = $3 WHERE id = $4 AND status IN ({})",
            placeholders(5, from.len())
        );
        let mut query = sqlx::query(AssertSqlSafe(sql))
            .bind(to.as_str())
            .bind(micros(at))
            .bind(error)
            .bind(id.as_str());
        for state in from {
            query = query.bind(state.as_str());
        }
        let done = query.execute(&self.pool).await.map_err(store_error)?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        let message = match self.run(id).await? {
            None => "no such run".to_owned(),
            Some(r) => format!("cannot become {} from {}", to.as_str(), r.status.as_str()),
        };
        Err(Error::Transition {
            run: id.to_string(),
            message,
        })
    }

    /// Records a run's planned steps, in order, as pending.
    pub async fn plan_steps(&self, id: &RunId, assets: &[AssetKey]) -> Result<()> {
        let mut tx = self.begin_write().await?;
        for (position, asset) in assets.iter().enumerate() {
            sqlx::query(
                "INSERT INTO run_steps (run_id, position, asset, state) VALUES ($1, $2, $3, $4)",
            )
            .bind(id.as_str())
            .bind(to_i64(position as u64))
            .bind(asset.as_str())
            .bind(StepState::Pending.as_str())
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)?;
        Ok(())
    }

    /// The status and error of a run, if it exists.
    pub async fn run_status(&self, id: &RunId) -> Result<Option<(RunStatus, Option<String>)>> {
        Ok(self.run(id).await?.map(|r| (r.status, r.error)))
    }

    /// One run, if it exists.
    pub async fn run(&self, id: &RunId) -> Result<Option<RunRecord>> {
        const SQL: &str = select_runs!("WHERE r.id = $1");
        let row = sqlx::query(SQL)
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        row.map(|row| run_record(&row)).transpose()
    }

    /// Runs, newest first, as `query` says: a page of `query.limit`.
    pub async fn runs(&self, query: &RunQuery) -> Result<Page<RunRecord>> {
        const SQL: &str = select_runs!(
            "WHERE (CAST($1 AS TEXT) IS NULL OR r.status = $1) \
             AND (CAST($2 AS TEXT) IS NULL OR EXISTS \
                  (SELECT 1 FROM run_steps s WHERE s.run_id = r.id AND s.asset = $2)) \
             AND (CAST($3 AS TEXT) IS NULL OR r.id < $3) \
             ORDER BY r.id DESC LIMIT $4"
        );
        let rows = sqlx::query(SQL)
            .bind(query.status.map(RunStatus::as_str))
            .bind(query.asset.as_ref().map(AssetKey::as_str))
            .bind(query.before.as_ref().map(RunId::as_str))
            .bind(Page::<RunRecord>::fetch(query.limit))
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        let records = rows.iter().map(run_record).collect::<Result<Vec<_>>>()?;
        Ok(Page::of(records, query.limit))
    }

    /// How many runs there are in each status, every status listed (0 when none).
    pub async fn run_counts(&self) -> Result<Vec<(RunStatus, u64)>> {
        let rows = sqlx::query("SELECT status, COUNT(*) FROM runs GROUP BY status")
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        let mut counts: Vec<(RunStatus, u64)> =
            RunStatus::ALL.iter().map(|&status| (status, 0)).collect();
        for row in &rows {
            let status: String = get(row, 0)?;
            let status = RunStatus::parse(&status)
                .ok_or_else(|| Error::corrupt("runs", format!("unknown status {status:?}")))?;
            if let Some(slot) = counts.iter_mut().find(|(s, _)| *s == status) {
                slot.1 = from_i64(get(row, 1)?);
            }
        }
        Ok(counts)
    }

    /// A run's steps, in plan order.
    pub async fn run_steps(&self, id: &RunId) -> Result<Vec<StepRecord>> {
        let rows = sqlx::query(
            "SELECT asset, state, started_at, finished_at, message, row_count, byte_size \
             FROM run_steps WHERE run_id = $1 ORDER BY position",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.iter()
            .map(|row| {
                let state: String = get(row, 1)?;
                Ok(StepRecord {
                    asset: get(row, 0)?,
                    state: StepState::parse(&state).ok_or_else(|| {
                        Error::corrupt(
                            format!("run_steps row of run {id}"),
                            format!("unknown state {state:?}"),
                        )
                    })?,
                    started_at: get::<Option<i64>>(row, 2)?.map(from_micros),
                    finished_at: get::<Option<i64>>(row, 3)?.map(from_micros),
                    message: get(row, 4)?,
                    row_count: get::<Option<i64>>(row, 5)?.map(from_i64),
                    byte_size: get::<Option<i64>>(row, 6)?.map(from_i64),
                })
            })
            .collect()
    }

    /// A run's log lines after `after_seq` (0: all), in order.
    pub async fn run_logs(&self, id: &RunId, after_seq: u64) -> Result<Vec<LogLine>> {
        let rows = sqlx::query(
            "SELECT seq, at, level, asset, message FROM run_logs \
             WHERE run_id = $1 AND seq > $2 ORDER BY seq",
        )
        .bind(id.as_str())
        .bind(to_i64(after_seq))
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.iter()
            .map(|row| {
                let level: String = get(row, 2)?;
                Ok(LogLine {
                    seq: from_i64(get(row, 0)?),
                    at: from_micros(get(row, 1)?),
                    level: LogLevel::parse(&level).ok_or_else(|| {
                        Error::corrupt(
                            format!("run_logs row of run {id}"),
                            format!("unknown level {level:?}"),
                        )
                    })?,
                    asset: get(row, 3)?,
                    message: get(row, 4)?,
                })
            })
            .collect()
    }

    /// Each asset's latest failed step, when it came after the asset's current version.
    pub async fn failures(&self) -> Result<Vec<Failure>> {
        let rows = sqlx::query(
            "SELECT s.asset, s.run_id, s.finished_at, s.message FROM run_steps s \
             WHERE s.state = 'failed' AND s.finished_at > COALESCE( \
                 (SELECT h.updated_at FROM asset_heads h \
                  WHERE h.asset = s.asset AND h.partition_key = ''), 0) \
             ORDER BY s.finished_at",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        let mut latest: std::collections::BTreeMap<String, Failure> = Default::default();
        for row in &rows {
            let failure = Failure {
                asset: get(row, 0)?,
                run_id: RunId::new(get::<String>(row, 1)?),
                at: from_micros(get::<Option<i64>>(row, 2)?.unwrap_or(0)),
                error: get::<Option<String>>(row, 3)?.unwrap_or_default(),
            };
            latest.insert(failure.asset.clone(), failure);
        }
        Ok(latest.into_values().collect())
    }

    /// A value that changes whenever a head moves or a run is requested, starts, progresses or
    /// ends, in this process or another: what the web view polls to stay current. Reads only
    /// indexed rows and the runs not yet finished, so it stays cheap as history grows.
    pub async fn change_marker(&self) -> Result<(i64, String, i64, i64)> {
        let row = sqlx::query(
            "SELECT (SELECT COALESCE(MAX(updated_at), 0) FROM asset_heads), \
             (SELECT COALESCE(MAX(id), '') FROM runs), \
             (SELECT COUNT(*) FROM runs WHERE status IN ('queued', 'running')), \
             (SELECT COUNT(*) FROM run_logs WHERE run_id IN \
                 (SELECT id FROM runs WHERE status IN ('queued', 'running')))",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(store_error)?;
        Ok((get(&row, 0)?, get(&row, 1)?, get(&row, 2)?, get(&row, 3)?))
    }
}

fn run_record(row: &sqlx::any::AnyRow) -> Result<RunRecord> {
    let id: String = get(row, 0)?;
    let (kind, status): (String, String) = (get(row, 1)?, get(row, 2)?);
    let corrupt = |what: &str| Error::corrupt(format!("runs row {id}"), what);
    Ok(RunRecord {
        kind: RunKind::parse(&kind).ok_or_else(|| corrupt(&format!("unknown kind {kind:?}")))?,
        status: RunStatus::parse(&status)
            .ok_or_else(|| corrupt(&format!("unknown status {status:?}")))?,
        id: RunId::new(id.clone()),
        selection: get(row, 3)?,
        stale_only: get::<i64>(row, 4)? != 0,
        started_at: from_micros(get(row, 5)?),
        finished_at: get::<Option<i64>>(row, 6)?.map(from_micros),
        error: get(row, 7)?,
        steps: StepCounts {
            total: from_i64(get(row, 8)?),
            materialized: from_i64(get(row, 9)?),
            skipped: from_i64(get(row, 10)?),
            failed: from_i64(get(row, 11)?),
            cancelled: from_i64(get(row, 13)?),
        },
        triggered_by: get(row, 12)?,
    })
}

/// `$start, $start+1, ...`: `n` numbered placeholders, for an `IN (...)` list of bound values.
/// The only text a query built with it gains is these numbers, which is why such a query may be
/// passed as `AssertSqlSafe`.
pub(crate) fn placeholders(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn refused(id: &RunId, to: &str) -> Error {
    Error::Transition {
        run: id.to_string(),
        message: format!("nothing moves to {to}: it is where a record starts"),
    }
}
