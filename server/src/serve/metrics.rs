//! `GET /metrics`: Prometheus's text format (version 0.0.4).
//!
//! Two kinds of figures. From the store, so every server on one database shows the same: runs by
//! status, assets by status and by freshness (from the server's snapshot), the latest automation
//! evaluation. From this process: its queue (runs waiting for a turn) and the steps its runs
//! finished, with a histogram of their durations.
//!
//! **Invariant:** no label value comes from outside the code but asset statuses and run statuses,
//! which are fixed words; no key, path or error text is ever a label (unbounded series).

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use freshet_core::Status;
use freshet_core::model::FreshnessState;

use super::AppState;
use super::error::ApiError;

/// Upper bounds of the step duration histogram's buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// What this process counts as its runs go.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    /// Runs queued here and waiting for a turn.
    pub(crate) waiting: AtomicU64,
    steps: Mutex<[Histogram; 4]>,
}

/// How a step ended, as a label.
#[derive(Debug, Clone, Copy)]
pub(crate) enum StepEnd {
    Materialized = 0,
    Skipped = 1,
    Failed = 2,
    Cancelled = 3,
}

const STEP_ENDS: [&str; 4] = ["materialized", "skipped", "failed", "cancelled"];

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Per bucket (not cumulative), then one for above the last bound.
    counts: [u64; BUCKETS.len() + 1],
    sum: f64,
}

impl Metrics {
    /// Counts a step of this process's runs that ended after `took`.
    pub(crate) fn step_finished(&self, end: StepEnd, took: Duration) {
        let seconds = took.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(BUCKETS.len());
        let mut steps = self.steps.lock().unwrap_or_else(|e| e.into_inner());
        let histogram = &mut steps[end as usize];
        histogram.counts[bucket] += 1;
        histogram.sum += seconds;
    }

    fn write_steps(&self, out: &mut String) {
        let steps = self.steps.lock().unwrap_or_else(|e| e.into_inner()).clone();
        help(
            out,
            "freshet_step_duration_seconds",
            "histogram",
            "How long the steps of this process's runs took, by how they ended.",
        );
        for (end, histogram) in STEP_ENDS.iter().zip(&steps) {
            let mut cumulative = 0;
            for (bound, count) in BUCKETS.iter().zip(&histogram.counts) {
                cumulative += count;
                let _ = writeln!(
                    out,
                    "freshet_step_duration_seconds_bucket{{outcome=\"{end}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            cumulative += histogram.counts[BUCKETS.len()];
            let _ = writeln!(
                out,
                "freshet_step_duration_seconds_bucket{{outcome=\"{end}\",le=\"+Inf\"}} {cumulative}"
            );
            let _ = writeln!(
                out,
                "freshet_step_duration_seconds_sum{{outcome=\"{end}\"}} {}",
                histogram.sum
            );
            let _ = writeln!(
                out,
                "freshet_step_duration_seconds_count{{outcome=\"{end}\"}} {cumulative}"
            );
        }
    }
}

fn help(out: &mut String, name: &str, kind: &str, text: &str) {
    let _ = writeln!(out, "# HELP {name} {text}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// `GET /metrics`.
pub(crate) async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let shared = &state.0;
    let mut out = String::with_capacity(4096);

    help(
        &mut out,
        "freshet_up",
        "gauge",
        "1 while this server answers.",
    );
    let _ = writeln!(
        out,
        "freshet_up{{version=\"{}\",store=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION"),
        shared.store.backend().as_str()
    );

    let snapshot = shared.snapshot().await?;
    let reports = snapshot.reports();
    help(&mut out, "freshet_assets", "gauge", "Assets by status.");
    for status in [Status::Fresh, Status::Stale, Status::Missing] {
        let n = reports.iter().filter(|r| r.status == status).count();
        let _ = writeln!(out, "freshet_assets{{status=\"{}\"}} {n}", status.as_str());
    }
    help(
        &mut out,
        "freshet_assets_freshness",
        "gauge",
        "Assets by their freshness policy's verdict (none: no policy).",
    );
    for state in [
        FreshnessState::Pass,
        FreshnessState::Warn,
        FreshnessState::Fail,
        FreshnessState::Unknown,
        FreshnessState::None,
    ] {
        let n = reports
            .iter()
            .filter(|r| r.freshness.state == state)
            .count();
        let _ = writeln!(
            out,
            "freshet_assets_freshness{{state=\"{}\"}} {n}",
            state.as_str()
        );
    }
    help(
        &mut out,
        "freshet_assets_failing",
        "gauge",
        "Assets whose latest attempt failed after their current version.",
    );
    let _ = writeln!(out, "freshet_assets_failing {}", snapshot.failures.len());

    help(
        &mut out,
        "freshet_runs",
        "gauge",
        "Runs recorded in the store, by status (every process on it).",
    );
    for (status, n) in shared.store.run_counts().await? {
        let _ = writeln!(out, "freshet_runs{{status=\"{}\"}} {n}", status.as_str());
    }
    help(
        &mut out,
        "freshet_queue_depth",
        "gauge",
        "Runs queued by this server and waiting for a turn.",
    );
    let _ = writeln!(
        out,
        "freshet_queue_depth {}",
        shared.metrics.waiting.load(Ordering::Relaxed)
    );
    shared.metrics.write_steps(&mut out);

    if let Some(evaluation) = shared.store.latest_evaluation().await? {
        help(
            &mut out,
            "freshet_automation_evaluation_seconds",
            "gauge",
            "How long the latest evaluation of the automation conditions took.",
        );
        let _ = writeln!(
            out,
            "freshet_automation_evaluation_seconds {}",
            evaluation.duration.as_secs_f64()
        );
        help(
            &mut out,
            "freshet_automation_evaluated_timestamp_seconds",
            "gauge",
            "When the latest evaluation ran (Unix time).",
        );
        let _ = writeln!(
            out,
            "freshet_automation_evaluated_timestamp_seconds {}",
            evaluation.evaluated_at.timestamp_millis() as f64 / 1000.0
        );
        help(
            &mut out,
            "freshet_automation_requested",
            "gauge",
            "Assets the latest evaluation requested, of those with a condition.",
        );
        let _ = writeln!(out, "freshet_automation_requested {}", evaluation.requested);
        help(
            &mut out,
            "freshet_automation_conditions",
            "gauge",
            "Assets with an automation condition at the latest evaluation.",
        );
        let _ = writeln!(out, "freshet_automation_conditions {}", evaluation.assets);
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        out,
    )
        .into_response())
}
