//! Automation's shapes: each asset's latest decision, the latest evaluation, and the schedules
//! (`freshet automation --json` and `GET /api/automation`).

use chrono::{DateTime, Utc};
use freshet_core::store::{DecisionRecord, EvaluationRecord};
use serde::Serialize;

use super::micros;

/// What automation decided lately.
#[derive(Debug, Serialize)]
pub struct AutomationJson {
    /// The assets with a condition, upstream first.
    pub assets: Vec<DecisionJson>,
    /// The latest recorded evaluation; `null` before the first.
    pub evaluation: Option<EvaluationJson>,
    /// The schedules, by name.
    pub schedules: Vec<ScheduleJson>,
    /// The sources automation looks at, upstream first.
    pub sensors: Vec<SensorJson>,
}

/// A source as automation watches it.
#[derive(Debug, Serialize)]
pub struct SensorJson {
    /// How often it is looked at, in milliseconds.
    pub interval_ms: u64,
    /// When its data last changed; `null` when never observed.
    pub last_change: Option<String>,
    /// When it was last seen unchanged or changed by a run or `observe` (automation's own looks
    /// record only changes).
    pub last_checked: Option<String>,
    /// The source.
    pub source: String,
    /// `files` (local files, looked at every quarter second) or `object store`.
    pub watch: &'static str,
}

/// One asset's automation: its condition, latest decision and the decisions as they changed.
#[derive(Debug, Serialize)]
pub struct AssetAutomationJson {
    /// The asset.
    pub asset: String,
    /// Its condition; `null` when it runs only on request.
    pub condition: Option<String>,
    /// Its decisions as they changed, newest first.
    pub history: Vec<DecisionJson>,
    /// Its latest decision; `null` before the first evaluation (or without a condition).
    pub latest: Option<DecisionJson>,
}

/// One asset's latest decision.
#[derive(Debug, Serialize)]
pub struct DecisionJson {
    /// The asset.
    pub asset: String,
    /// Its condition (`eager`, `on_cron "0 6 * * *" Europe/Paris`, `freshness`).
    pub condition: String,
    /// When it was decided; `null` before the first evaluation.
    pub decided_at: Option<String>,
    /// Why, in words; `null` before the first evaluation.
    pub reason: Option<String>,
    /// Whether the asset was requested.
    pub requested: bool,
    /// The run the request became.
    pub run_id: Option<String>,
}

impl DecisionJson {
    /// An asset's latest decision (`None`: not evaluated yet).
    pub fn new(asset: &str, condition: String, latest: Option<&DecisionRecord>) -> Self {
        Self {
            asset: asset.to_owned(),
            condition,
            decided_at: latest.map(|d| micros(d.decided_at)),
            reason: latest.map(|d| d.reason.clone()),
            requested: latest.is_some_and(|d| d.requested),
            run_id: latest.and_then(|d| d.run_id.as_ref().map(ToString::to_string)),
        }
    }
}

/// One evaluation.
#[derive(Debug, Serialize)]
pub struct EvaluationJson {
    /// Assets with a condition.
    pub assets: u64,
    /// How long it took, in milliseconds.
    pub duration_ms: f64,
    /// When it ran.
    pub evaluated_at: String,
    /// Its id.
    pub id: String,
    /// When time alone may change a decision next; `null` when nothing waits on time.
    pub next_at: Option<String>,
    /// Assets it requested.
    pub requested: u64,
    /// The run its requests became.
    pub run_id: Option<String>,
}

impl From<&EvaluationRecord> for EvaluationJson {
    fn from(e: &EvaluationRecord) -> Self {
        Self {
            assets: e.assets,
            duration_ms: e.duration.as_secs_f64() * 1000.0,
            evaluated_at: micros(e.evaluated_at),
            id: e.id.to_string(),
            next_at: e.next_at.map(micros),
            requested: e.requested,
            run_id: e.run_id.as_ref().map(ToString::to_string),
        }
    }
}

/// One schedule.
#[derive(Debug, Serialize)]
pub struct ScheduleJson {
    /// Five-field cron expression.
    pub cron: String,
    /// The latest tick handled; `null` before the first.
    pub last_tick: Option<String>,
    /// The run the latest tick requested.
    pub last_run_id: Option<String>,
    /// Its name.
    pub name: String,
    /// Its next tick.
    pub next_tick: Option<String>,
    /// What it materializes; `null` for every asset.
    pub selection: Option<String>,
    /// Whether only what is stale in the selection runs.
    pub stale_only: bool,
    /// IANA time zone; `UTC` when not set.
    pub timezone: String,
}

impl ScheduleJson {
    /// A schedule, its latest handled tick and run, and its next tick.
    pub fn new(
        schedule: &freshet_core::triggers::Schedule,
        last: Option<(DateTime<Utc>, Option<String>)>,
        next_tick: Option<DateTime<Utc>>,
    ) -> Self {
        let (last_tick, last_run_id) = match last {
            Some((tick, run)) => (Some(micros(tick)), run),
            None => (None, None),
        };
        Self {
            cron: schedule.cron.clone(),
            last_tick,
            last_run_id,
            name: schedule.name.clone(),
            next_tick: next_tick.map(micros),
            selection: schedule.selection.clone(),
            stale_only: schedule.stale_only,
            timezone: schedule
                .timezone
                .clone()
                .unwrap_or_else(|| "UTC".to_owned()),
        }
    }
}
