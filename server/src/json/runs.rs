//! The API's shapes for runs, their steps and logs, accepted requests, errors and live updates.

use freshet_core::RunId;
use freshet_core::store::{AttemptRecord, LogLine, RunRecord, StepCounts, StepRecord};
use serde::Serialize;

use super::{micros, millis_between};

/// A run as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunJson<'a> {
    /// From start to end, in milliseconds; `null` until it ends.
    pub duration_ms: Option<f64>,
    /// Why it failed.
    pub error: Option<&'a str>,
    /// When it ended.
    pub finished_at: Option<String>,
    /// Its id.
    pub id: &'a str,
    /// `materialize` or `observe`.
    pub kind: &'static str,
    /// The selection as typed; empty when none.
    pub selection: &'a str,
    /// Whether only what is behind was asked for.
    pub stale_only: bool,
    /// When it started.
    pub started_at: String,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub status: &'static str,
    /// Its steps by outcome.
    pub steps: StepCountsJson,
    /// What asked for it: `cli`, `api`, `automation` or `schedule NAME`.
    pub triggered_by: &'a str,
}

impl<'a> From<&'a RunRecord> for RunJson<'a> {
    fn from(r: &'a RunRecord) -> Self {
        Self {
            duration_ms: r.finished_at.map(|f| millis_between(r.started_at, f)),
            error: r.error.as_deref(),
            finished_at: r.finished_at.map(micros),
            id: r.id.as_str(),
            kind: r.kind.as_str(),
            selection: &r.selection,
            stale_only: r.stale_only,
            started_at: micros(r.started_at),
            status: r.status.as_str(),
            steps: StepCountsJson::from(&r.steps),
            triggered_by: &r.triggered_by,
        }
    }
}

/// A run's steps by outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StepCountsJson {
    /// Cancelled while they ran.
    pub cancelled: u64,
    /// Failed.
    pub failed: u64,
    /// Materialized.
    pub materialized: u64,
    /// Skipped.
    pub skipped: u64,
    /// Planned.
    pub total: u64,
}

impl From<&StepCounts> for StepCountsJson {
    fn from(s: &StepCounts) -> Self {
        Self {
            cancelled: s.cancelled,
            failed: s.failed,
            materialized: s.materialized,
            skipped: s.skipped,
            total: s.total,
        }
    }
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepJson<'a> {
    /// The asset.
    pub asset: &'a str,
    /// Bytes written.
    pub byte_size: Option<u64>,
    /// From start to end, in milliseconds.
    pub duration_ms: Option<f64>,
    /// When it ended.
    pub finished_at: Option<String>,
    /// Why it was skipped, or its error.
    pub message: Option<&'a str>,
    /// Rows written.
    pub row_count: Option<u64>,
    /// When it started computing.
    pub started_at: Option<String>,
    /// `pending`, `running`, `materialized`, `skipped` or `failed`.
    pub state: &'static str,
}

impl<'a> From<&'a StepRecord> for StepJson<'a> {
    fn from(s: &'a StepRecord) -> Self {
        Self {
            asset: &s.asset,
            byte_size: s.byte_size,
            duration_ms: s
                .started_at
                .zip(s.finished_at)
                .map(|(a, b)| millis_between(a, b)),
            finished_at: s.finished_at.map(micros),
            message: s.message.as_deref(),
            row_count: s.row_count,
            started_at: s.started_at.map(micros),
            state: s.state.as_str(),
        }
    }
}

/// A log line of a run; as a live update (`event: log`), with the run's id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogJson<'a> {
    /// The asset it is about.
    pub asset: Option<&'a str>,
    /// When it was written.
    pub at: String,
    /// `info`, `warn` or `error`.
    pub level: &'static str,
    /// In words.
    pub message: &'a str,
    /// Live updates only: the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<&'a str>,
    /// 1-based within the run.
    pub seq: u64,
}

impl<'a> LogJson<'a> {
    /// `l`, with `run_id` for a live update.
    pub fn new(run_id: Option<&'a RunId>, l: &'a LogLine) -> Self {
        Self {
            asset: l.asset.as_deref(),
            at: micros(l.at),
            level: l.level.as_str(),
            message: &l.message,
            run_id: run_id.map(RunId::as_str),
            seq: l.seq,
        }
    }
}

/// One attempt at a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttemptJson<'a> {
    /// The step's asset.
    pub asset: &'a str,
    /// 1-based.
    pub attempt: u32,
    /// Its error; `null` when it succeeded or has not ended.
    pub error: Option<&'a str>,
    /// When it ended.
    pub finished_at: Option<String>,
    /// When it started.
    pub started_at: String,
}

impl<'a> AttemptJson<'a> {
    /// `a`, an attempt at the step `asset`.
    pub fn new(asset: &'a str, a: &'a AttemptRecord) -> Self {
        Self {
            asset,
            attempt: a.attempt,
            error: a.error.as_deref(),
            finished_at: a.finished_at.map(micros),
            started_at: micros(a.started_at),
        }
    }
}

/// A run's attempts, each named by its step's asset.
pub fn attempts_json<'a>(
    steps: &'a [StepRecord],
    attempts: &'a [AttemptRecord],
) -> Vec<AttemptJson<'a>> {
    attempts
        .iter()
        .map(|a| {
            let asset = steps.get(a.position).map_or("", |s| s.asset.as_str());
            AttemptJson::new(asset, a)
        })
        .collect()
}

/// `GET /api/runs/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunDetailJson<'a> {
    /// Every attempt at its steps, by step then attempt.
    pub attempts: Vec<AttemptJson<'a>>,
    /// Its log, in order.
    pub logs: Vec<LogJson<'a>>,
    /// The run.
    pub run: RunJson<'a>,
    /// Its steps, upstream first.
    pub steps: Vec<StepJson<'a>>,
}

/// A run accepted (queued), or asked to stop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AcceptedJson<'a> {
    /// The run.
    pub run_id: &'a str,
}

/// Every 4xx and 5xx body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorJson<'a> {
    /// One line saying what is wrong.
    pub error: &'a str,
}

/// Live update `event: run`: a run changed status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunEventJson<'a> {
    /// The run.
    pub run_id: &'a str,
    /// Its new status.
    pub status: &'static str,
}

/// Live update `event: step`: a step started or ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepEventJson<'a> {
    /// The asset.
    pub asset: &'a str,
    /// Why it was skipped, or its error.
    pub message: Option<&'a str>,
    /// The run.
    pub run_id: &'a str,
    /// `running`, `materialized`, `skipped` or `failed`.
    pub state: &'a str,
}

/// Live update `event: assets` (always `{}`): statuses may have changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AssetsEventJson {}
