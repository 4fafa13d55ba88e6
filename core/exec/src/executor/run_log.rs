//! The run's record as it goes: log lines, step and attempt starts and ends, passed to the
//! observer at once and written to the store in batches by a task of their own.

use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use super::events::{RunEvent, RunObserver, RunReport, StepOutcome};
use crate::Result;
use crate::freshness::Clock;
use crate::model::{AssetKey, Observation, RunId};
use crate::store::{LogLevel, LogLine, Progress, RunStatus, StepRecord, StepState, Store};

/// How long a record may wait for others to go to the store with: short enough that anyone
/// following the run in the store sees it at once, long enough that a run of short steps
/// writes a batch per many steps.
const LINGER: Duration = Duration::from_millis(50);

/// Writes a run's record as it goes: each line to the observer at once, and everything to the
/// store through a [`Recorder`], so that no step waits for the store to take its log. Recording
/// is best effort: a store that cannot take a log line does not stop the run (a
/// materialization still cannot become current without the store).
pub(super) struct RunLog<'a> {
    store: &'a Store,
    clock: &'a dyn Clock,
    pub(super) run_id: &'a RunId,
    pub(super) observer: &'a dyn RunObserver,
    recorder: Recorder,
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
            recorder: Recorder::start(store.clone(), run_id.clone()),
            seq: 0,
            started: Instant::now(),
        }
    }

    /// Hands `progress` to the store, in order with the rest of the run's record.
    pub(super) fn record(&self, progress: Progress) {
        self.recorder.record(progress);
    }

    /// Waits until everything handed over so far is in the store (or failed to get there).
    pub(super) async fn flush(&self) {
        self.recorder.flush().await;
    }

    pub(super) fn write(&mut self, level: LogLevel, asset: Option<&AssetKey>, message: String) {
        self.seq += 1;
        let line = LogLine {
            seq: self.seq,
            at: self.clock.now(),
            level,
            asset: asset.map(ToString::to_string),
            message,
        };
        self.observer.event(&RunEvent::Log {
            run_id: self.run_id,
            line: &line,
        });
        self.record(Progress::Log(line));
    }

    pub(super) fn observed(&mut self, observation: &Observation, changed: bool) {
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
        );
    }

    pub(super) fn step_finished(
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
                    "materialized {key}: {}{} rows, {} bytes in {} ms{}",
                    partitions_made(m).0,
                    m.row_count,
                    m.byte_size,
                    m.duration_us / 1000,
                    partitions_made(m).1
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
            StepOutcome::Cancelled => (
                StepState::Cancelled,
                Some("cancelled while it ran; nothing of it was recorded".to_owned()),
                LogLevel::Warn,
                format!("cancelled {key}: stopped while it ran; nothing of it was recorded"),
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
        self.record(Progress::StepFinished { position, end });
        self.write(level, Some(key), line);
    }

    /// Records the run's status, then logs its end: the last line says what the store holds.
    /// When another process ended the run first (it took this one for dead), that is logged
    /// and returned as the error, and nothing else of the run's end is recorded.
    pub(super) async fn finish(
        &mut self,
        status: RunStatus,
        error: Option<&str>,
        report: &RunReport,
    ) -> Result<()> {
        let count = |f: fn(&StepOutcome) -> bool| report.steps.iter().filter(|(_, o)| f(o)).count();
        let skipped = count(|o| matches!(o, StepOutcome::Skipped(_)));
        let cancelled = count(|o| matches!(o, StepOutcome::Cancelled));
        let mut line = format!(
            "run {}: {} materialized, {skipped} skipped",
            status.as_str(),
            report.materialized(),
        );
        if cancelled > 0 {
            line.push_str(&format!(", {cancelled} cancelled"));
        }
        line.push_str(&format!(" in {} ms", self.started.elapsed().as_millis()));
        if let Some(error) = error {
            line.push_str(&format!(" ({error})"));
        }
        let level = match status {
            RunStatus::Succeeded => LogLevel::Info,
            RunStatus::Cancelled => LogLevel::Warn,
            _ => LogLevel::Error,
        };
        self.flush().await;
        let ended = self
            .store
            .finish_run(self.run_id, status, self.clock.now(), error)
            .await;
        if let Err(crate::store::Error::Transition { .. }) = ended
            && let Ok(Some(run)) = self.store.run(self.run_id).await
            && run.status.is_finished()
        {
            let why = run
                .error
                .as_deref()
                .map(|error| format!(" ({error})"))
                .unwrap_or_default();
            let line = format!(
                "run {}{why} by another process while this one ran it: its steps were stopped",
                run.status.as_str()
            );
            self.write(LogLevel::Error, None, line.clone());
            self.flush().await;
            return Err(crate::Error::EndedElsewhere(format!(
                "run {}: {line}",
                self.run_id
            )));
        }
        ended?;
        self.write(level, None, line);
        self.flush().await;
        Ok(())
    }
}

/// Hands a run's records to a task that writes them to the store in order, each batch in one
/// transaction: a record waits at most [`LINGER`] for others, and a flush writes at once. The
/// task writes what it holds and ends when the recorder is dropped.
struct Recorder {
    send: mpsc::UnboundedSender<Message>,
}

enum Message {
    Record(Progress),
    Flush(oneshot::Sender<()>),
}

impl Recorder {
    fn start(store: Store, run_id: RunId) -> Self {
        let (send, receive) = mpsc::unbounded_channel();
        tokio::spawn(write_batches(store, run_id, receive));
        Self { send }
    }

    fn record(&self, progress: Progress) {
        // The task ends only once this recorder is dropped.
        let _ = self.send.send(Message::Record(progress));
    }

    async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.send.send(Message::Flush(done)).is_ok() {
            let _ = written.await;
        }
    }
}

async fn write_batches(store: Store, run_id: RunId, mut receive: mpsc::UnboundedReceiver<Message>) {
    let mut batch = Vec::new();
    while let Some(first) = receive.recv().await {
        let mut flushed = None;
        match first {
            Message::Record(progress) => batch.push(progress),
            Message::Flush(done) => flushed = Some(done),
        }
        let until = tokio::time::Instant::now() + LINGER;
        while flushed.is_none() {
            tokio::select! {
                message = receive.recv() => match message {
                    Some(Message::Record(progress)) => batch.push(progress),
                    Some(Message::Flush(done)) => flushed = Some(done),
                    None => break,
                },
                () = tokio::time::sleep_until(until) => break,
            }
        }
        if !batch.is_empty() {
            write_batch(&store, &run_id, &batch).await;
            batch.clear();
        }
        if let Some(done) = flushed {
            let _ = done.send(());
        }
    }
}

/// Writes `batch` in one transaction; if the store refuses it, one record at a time, so that
/// one bad record (or a busy moment) costs only itself, not the step ends beside it.
async fn write_batch(store: &Store, run_id: &RunId, batch: &[Progress]) {
    let refusals = match store.record_progress(run_id, batch).await {
        Ok(refusals) => refusals,
        Err(e) if batch.len() > 1 => {
            warn!(error = %e, records = batch.len(), "cannot record the run's progress at once; one by one");
            let mut refusals = Vec::new();
            for record in batch {
                match store
                    .record_progress(run_id, std::slice::from_ref(record))
                    .await
                {
                    Ok(r) => refusals.extend(r),
                    Err(e) => warn!(error = %e, "cannot record a step's or a log line's record"),
                }
            }
            refusals
        }
        Err(e) => {
            warn!(error = %e, "cannot record the run's progress");
            Vec::new()
        }
    };
    for e in refusals {
        warn!(error = %e, "a step's record was refused");
    }
}

fn short(version: &str) -> &str {
    version.get(..8).unwrap_or(version)
}

/// What a partitioned step's report says of its partitions, before its rows (`3 partitions
/// (2024-03-01..2024-03-03), `) and after them (`; 1 waits for its inputs (...)`); nothing for
/// another step.
pub fn partitions_made(m: &crate::model::Materialization) -> (String, String) {
    use super::partitioned::{PARTITIONS_MADE, PARTITIONS_WAITING};
    use crate::model::MetadataValue;
    let text = |name: &str| match m.details.metadata.get(name) {
        Some(MetadataValue::Text(words)) => Some(words.clone()),
        _ => None,
    };
    (
        text(PARTITIONS_MADE)
            .map(|w| format!("{w}, "))
            .unwrap_or_default(),
        text(PARTITIONS_WAITING)
            .map(|w| format!("; {w}"))
            .unwrap_or_default(),
    )
}
