//! A run's progress as it goes: its steps' starts and ends, their attempts and its log lines.
//! The run engine hands these over as they happen and records them in batches, one transaction
//! each, off the path of the steps themselves (a statement inside a transaction costs a tenth of
//! one on its own).

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, AssertSqlSafe};

use freshet_plan::model::RunId;

use crate::lifecycle::StepState;
use crate::runs::{LogLine, StepRecord, placeholders, refused};
use crate::{Error, Result, Store, micros, store_error, to_i64};

/// One thing a run did, to record.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// Step `position` (0-based) started computing.
    StepStarted {
        /// The step.
        position: usize,
        /// When.
        at: DateTime<Utc>,
    },
    /// Step `position` ended as `end` says.
    StepFinished {
        /// The step.
        position: usize,
        /// How and when.
        end: StepRecord,
    },
    /// Attempt `attempt` (1-based) at step `position` started.
    AttemptStarted {
        /// The step.
        position: usize,
        /// Which attempt.
        attempt: u32,
        /// When.
        at: DateTime<Utc>,
    },
    /// Attempt `attempt` at step `position` ended; `error` is `None` when it succeeded.
    AttemptFinished {
        /// The step.
        position: usize,
        /// Which attempt.
        attempt: u32,
        /// When.
        at: DateTime<Utc>,
        /// Why it failed.
        error: Option<String>,
    },
    /// A line of the run's log.
    Log(LogLine),
}

impl Store {
    /// Records `records` of run `run`, in order, in one transaction. A step move its step's
    /// state does not allow (ending a step that ended already) changes nothing and is returned
    /// among the refusals; the others are recorded all the same. `Err` only when the database
    /// failed, and then nothing is recorded.
    pub async fn record_progress(&self, run: &RunId, records: &[Progress]) -> Result<Vec<Error>> {
        let _turn = self.write_turn().await;
        let mut tx = self.begin_write().await?;
        let mut refusals = Vec::new();
        for record in records {
            if let Err(e) = record_one(&mut tx, run, record).await {
                match e {
                    Error::Transition { .. } => refusals.push(e),
                    other => return Err(other),
                }
            }
        }
        tx.commit().await.map_err(store_error)?;
        Ok(refusals)
    }
}

async fn record_one(conn: &mut AnyConnection, run: &RunId, record: &Progress) -> Result<()> {
    match record {
        Progress::StepStarted { position, at } => {
            let from = StepState::Running.comes_from();
            let sql = format!(
                "UPDATE run_steps SET state = $1, started_at = $2 \
                 WHERE run_id = $3 AND position = $4 AND state IN ({})",
                placeholders(5, from.len())
            );
            let mut query = sqlx::query(AssertSqlSafe(sql))
                .bind(StepState::Running.as_str())
                .bind(micros(*at))
                .bind(run.as_str())
                .bind(to_i64(*position as u64));
            for state in from {
                query = query.bind(state.as_str());
            }
            let done = query.execute(conn).await.map_err(store_error)?;
            step_moved(run, *position, StepState::Running, done.rows_affected())
        }
        Progress::StepFinished { position, end } => {
            let from = end.state.comes_from();
            if from.is_empty() {
                return Err(refused(run, end.state.as_str()));
            }
            let sql = format!(
                "UPDATE run_steps SET state = $1, finished_at = $2, message = $3, \
                 row_count = $4, byte_size = $5 \
                 WHERE run_id = $6 AND position = $7 AND state IN ({})",
                placeholders(8, from.len())
            );
            let mut query = sqlx::query(AssertSqlSafe(sql))
                .bind(end.state.as_str())
                .bind(end.finished_at.map(micros))
                .bind(end.message.as_deref())
                .bind(end.row_count.map(to_i64))
                .bind(end.byte_size.map(to_i64))
                .bind(run.as_str())
                .bind(to_i64(*position as u64));
            for state in from {
                query = query.bind(state.as_str());
            }
            let done = query.execute(conn).await.map_err(store_error)?;
            step_moved(run, *position, end.state, done.rows_affected())
        }
        Progress::AttemptStarted {
            position,
            attempt,
            at,
        } => {
            sqlx::query(
                "INSERT INTO step_attempts (run_id, position, attempt, started_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(run.as_str())
            .bind(to_i64(*position as u64))
            .bind(i64::from(*attempt))
            .bind(micros(*at))
            .execute(conn)
            .await
            .map_err(store_error)?;
            Ok(())
        }
        Progress::AttemptFinished {
            position,
            attempt,
            at,
            error,
        } => {
            sqlx::query(
                "UPDATE step_attempts SET finished_at = $1, error = $2 \
                 WHERE run_id = $3 AND position = $4 AND attempt = $5 AND finished_at IS NULL",
            )
            .bind(micros(*at))
            .bind(error.as_deref())
            .bind(run.as_str())
            .bind(to_i64(*position as u64))
            .bind(i64::from(*attempt))
            .execute(conn)
            .await
            .map_err(store_error)?;
            Ok(())
        }
        Progress::Log(line) => {
            sqlx::query(
                "INSERT INTO run_logs (run_id, seq, at, level, asset, message) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(run.as_str())
            .bind(to_i64(line.seq))
            .bind(micros(line.at))
            .bind(line.level.as_str())
            .bind(line.asset.as_deref())
            .bind(line.message.as_str())
            .execute(conn)
            .await
            .map_err(store_error)?;
            Ok(())
        }
    }
}

/// `Ok` when a step's conditional update moved it; otherwise the refused move as an error.
fn step_moved(id: &RunId, position: usize, to: StepState, rows: u64) -> Result<()> {
    if rows == 1 {
        return Ok(());
    }
    Err(Error::Transition {
        run: id.to_string(),
        message: format!(
            "step {position} cannot become {}: it is not in a state that may",
            to.as_str()
        ),
    })
}
