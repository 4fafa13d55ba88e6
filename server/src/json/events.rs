//! `materialize --json`: one JSON object per line for each thing a run does, for scripts.

use freshet_core::executor::{RunEvent, StepOutcome};
use serde::Serialize;

/// One line of `materialize --json`, tagged by `event`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RunLineJson<'a> {
    /// A source was observed.
    Observed {
        /// The source.
        asset: &'a str,
        /// Its data version.
        data_version: &'a str,
        /// Whether that version is new.
        changed: bool,
    },
    /// The run's steps, upstream first.
    Planned {
        /// The run.
        run_id: &'a str,
        /// The assets to materialize.
        steps: Vec<&'a str>,
    },
    /// A step started computing.
    StepStarted {
        /// The asset.
        asset: &'a str,
        /// 1-based position in the plan.
        index: usize,
        /// Number of steps.
        total: usize,
    },
    /// An attempt failed and will be tried again.
    StepRetrying {
        /// The asset.
        asset: &'a str,
        /// The attempt that failed.
        attempt: u32,
        /// Milliseconds until the next.
        delay_ms: u64,
        /// Why it failed.
        error: &'a str,
    },
    /// A step ended.
    StepFinished {
        /// The asset.
        asset: &'a str,
        /// 1-based position in the plan.
        index: usize,
        /// Number of steps.
        total: usize,
        /// `materialized`, `skipped`, `failed` or `cancelled`.
        outcome: &'static str,
        /// Why it was skipped, or its error.
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        /// Rows written.
        #[serde(skip_serializing_if = "Option::is_none")]
        rows: Option<u64>,
        /// Bytes written.
        #[serde(skip_serializing_if = "Option::is_none")]
        bytes: Option<u64>,
        /// How long it took, in milliseconds.
        #[serde(skip_serializing_if = "Option::is_none")]
        duration_ms: Option<f64>,
    },
    /// The run ended (the last line).
    Finished {
        /// The run; `null` when there was nothing to do.
        run_id: Option<&'a str>,
        /// `succeeded`, `failed`, `cancelled`, or `fresh` when there was nothing to do.
        status: &'static str,
        /// Steps materialized.
        materialized: usize,
        /// Steps skipped.
        skipped: usize,
        /// Steps failed.
        failed: usize,
    },
}

impl<'a> RunLineJson<'a> {
    /// The line for `event`, if it has one (log lines do not: the steps say it all).
    pub fn of(event: &'a RunEvent<'a>) -> Option<Self> {
        Some(match event {
            RunEvent::Observed {
                observation,
                changed,
            } => RunLineJson::Observed {
                asset: observation.asset.as_str(),
                data_version: observation.data_version.as_str(),
                changed: *changed,
            },
            RunEvent::Planned { run_id, steps } => RunLineJson::Planned {
                run_id: run_id.as_str(),
                steps: steps.iter().map(|s| s.key.as_str()).collect(),
            },
            RunEvent::StepStarted { key, index, total } => RunLineJson::StepStarted {
                asset: key.as_str(),
                index: *index,
                total: *total,
            },
            RunEvent::StepRetrying {
                key,
                attempt,
                delay,
                error,
            } => RunLineJson::StepRetrying {
                asset: key.as_str(),
                attempt: *attempt,
                delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                error,
            },
            RunEvent::StepFinished {
                key,
                index,
                total,
                outcome,
            } => {
                let (name, message, m) = match outcome {
                    StepOutcome::Materialized(m) => ("materialized", None, Some(m)),
                    StepOutcome::Skipped(why) => ("skipped", Some(why.to_string()), None),
                    StepOutcome::Cancelled => ("cancelled", None, None),
                    StepOutcome::Failed { error, .. } => ("failed", Some(error.clone()), None),
                };
                RunLineJson::StepFinished {
                    asset: key.as_str(),
                    index: *index,
                    total: *total,
                    outcome: name,
                    message,
                    rows: m.map(|m| m.row_count),
                    bytes: m.map(|m| m.byte_size),
                    duration_ms: m.map(|m| m.duration_us as f64 / 1000.0),
                }
            }
            _ => return None,
        })
    }
}
