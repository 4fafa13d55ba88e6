//! The run's record as it goes: log lines and step ends written to the store and passed to the
//! observer.

use std::time::Instant;

use chrono::Utc;
use tracing::warn;

use super::events::{RunEvent, RunObserver, RunReport, StepOutcome};
use crate::Result;
use crate::freshness::Clock;
use crate::model::{AssetKey, Observation, RunId};
use crate::store::{LogLevel, LogLine, RunStatus, StepRecord, StepState, Store};

/// Writes a run's record as it goes: its log lines and step ends to the store, and each line to
/// the observer. Recording is best effort: a store that cannot take a log line does not stop the
/// run (a materialization still cannot become current without the store).
pub(super) struct RunLog<'a> {
    store: &'a Store,
    clock: &'a dyn Clock,
    pub(super) run_id: &'a RunId,
    pub(super) observer: &'a dyn RunObserver,
    seq: u64,
    started: Instant,
}

impl<'a> RunLog<'a> {
    pub(super) fn new(
        store: &'a Store,
        clock: &'a dyn Clock,
        run_id: &'a RunId,
        observer: &'a dyn RunObserver,
    ) -> Self {
        Self {
            store,
            clock,
            run_id,
            observer,
            seq: 0,
            started: Instant::now(),
        }
    }

    pub(super) async fn write(
        &mut self,
        level: LogLevel,
        asset: Option<&AssetKey>,
        message: String,
    ) {
        self.seq += 1;
        let line = LogLine {
            seq: self.seq,
            at: self.clock.now(),
            level,
            asset: asset.map(ToString::to_string),
            message,
        };
        if let Err(e) = self.store.append_log(self.run_id, &line).await {
            warn!(error = %e, "cannot record a log line");
        }
        self.observer.event(&RunEvent::Log {
            run_id: self.run_id,
            line: &line,
        });
    }

    pub(super) async fn observed(&mut self, observation: &Observation, changed: bool) {
        let what = if changed {
            format!(
                "new data version {} ({} file{}, {} bytes)",
                short(observation.data_version.as_str()),
                observation.file_count,
                if observation.file_count == 1 { "" } else { "s" },
                observation.byte_size
            )
        } else {
            "unchanged".to_owned()
        };
        self.write(
            LogLevel::Info,
            Some(&observation.asset),
            format!("observed {}: {what}", observation.asset),
        )
        .await;
    }

    pub(super) async fn step_finished(
        &mut self,
        position: usize,
        key: &AssetKey,
        started_at: Option<chrono::DateTime<Utc>>,
        outcome: &StepOutcome,
    ) {
        let (state, message, level, line) = match outcome {
            StepOutcome::Materialized(m) => (
                StepState::Materialized,
                None,
                LogLevel::Info,
                format!(
                    "materialized {key}: {} rows, {} bytes in {} ms",
                    m.row_count,
                    m.byte_size,
                    m.duration_us / 1000
                ),
            ),
            StepOutcome::Skipped(why) => (
                StepState::Skipped,
                Some(why.to_string()),
                if why.is_expected() {
                    LogLevel::Info
                } else {
                    LogLevel::Warn
                },
                format!("skipped {key}: {why}"),
            ),
            StepOutcome::Failed { error, .. } => (
                StepState::Failed,
                Some(error.clone()),
                LogLevel::Error,
                format!("failed {key}: {error}"),
            ),
        };
        let (row_count, byte_size) = match outcome {
            StepOutcome::Materialized(m) => (Some(m.row_count), Some(m.byte_size)),
            _ => (None, None),
        };
        let end = StepRecord {
            asset: key.to_string(),
            state,
            started_at,
            finished_at: Some(self.clock.now()),
            message,
            row_count,
            byte_size,
        };
        if let Err(e) = self.store.step_finished(self.run_id, position, &end).await {
            warn!(error = %e, "cannot record a step's end");
        }
        self.write(level, Some(key), line).await;
    }

    /// Logs the run's end and records its status.
    pub(super) async fn finish(
        &mut self,
        status: RunStatus,
        error: Option<&str>,
        report: &RunReport,
    ) -> Result<()> {
        let skipped = report
            .steps
            .iter()
            .filter(|(_, o)| matches!(o, StepOutcome::Skipped(_)))
            .count();
        let mut line = format!(
            "run {}: {} materialized, {skipped} skipped in {} ms",
            status.as_str(),
            report.materialized(),
            self.started.elapsed().as_millis()
        );
        if let Some(error) = error {
            line.push_str(&format!(" ({error})"));
        }
        let level = match status {
            RunStatus::Succeeded => LogLevel::Info,
            RunStatus::Cancelled => LogLevel::Warn,
            _ => LogLevel::Error,
        };
        self.write(level, None, line).await;
        self.store
            .finish_run(self.run_id, status, self.clock.now(), error)
            .await?;
        Ok(())
    }
}

fn short(version: &str) -> &str {
    version.get(..8).unwrap_or(version)
}
