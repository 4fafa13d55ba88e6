//! Progress lines on stderr while a command runs.

use std::io::Write as _;

use freshet_core::executor::{RunEvent, RunObserver, StepOutcome};

use freshet_core::policy::duration_words;

use crate::json::RunLineJson;
use crate::words;

/// Prints progress lines on stderr as a run goes.
pub(super) struct Progress;

/// Prints one JSON object per line on stdout as a run goes (`materialize --json`).
pub(super) struct JsonProgress;

impl RunObserver for JsonProgress {
    fn event(&self, event: &RunEvent<'_>) {
        if let Some(line) = RunLineJson::of(event)
            && let Ok(text) = serde_json::to_string(&line)
        {
            // A closed stdout ends nothing but the output.
            let _ = writeln!(std::io::stdout().lock(), "{text}");
        }
    }
}

impl RunObserver for Progress {
    fn event(&self, event: &RunEvent<'_>) {
        if let Some(line) = line(event, true) {
            eprintln!("{line}");
        }
    }
}

/// The line an event prints, if any; `started` says whether a step starting gets one (the live
/// display shows running steps in its footer instead).
pub(super) fn line(event: &RunEvent<'_>, started: bool) -> Option<String> {
    Some(match event {
        RunEvent::Observed {
            observation: o,
            changed,
        } => {
            let what = if *changed {
                "new data version"
            } else {
                "unchanged"
            };
            format!(
                "observed {}: {what} {} ({} file{}, {})",
                o.asset,
                words::short(o.data_version.as_str()),
                o.file_count,
                if o.file_count == 1 { "" } else { "s" },
                words::bytes(o.byte_size)
            )
        }
        RunEvent::Planned { run_id, steps } => format!(
            "run {run_id}: {} asset{} planned",
            steps.len(),
            if steps.len() == 1 { "" } else { "s" }
        ),
        RunEvent::StepStarted { key, index, total } if started => {
            format!("[{index}/{total}] {key} ...")
        }
        RunEvent::StepFinished {
            key,
            index,
            total,
            outcome,
        } => {
            let detail = match outcome {
                StepOutcome::Materialized(m) => {
                    let (made, waiting) = freshet_core::executor::partitions_made(m);
                    format!(
                        "materialized {made}{} rows, {} in {}{waiting}",
                        m.row_count,
                        words::bytes(m.byte_size),
                        words::millis(m.duration_us)
                    )
                }
                StepOutcome::Skipped(reason) => format!("skipped: {reason}"),
                StepOutcome::Cancelled => "cancelled while it ran".to_owned(),
                StepOutcome::Failed { error, .. } => format!("FAILED: {error}"),
            };
            format!("[{index}/{total}] {key} {detail}")
        }
        RunEvent::StepRetrying {
            key,
            attempt,
            delay,
            error,
        } => format!(
            "{key}: attempt {attempt} failed: {error}; retrying in {}",
            duration_words(*delay)
        ),
        _ => return None,
    })
}
