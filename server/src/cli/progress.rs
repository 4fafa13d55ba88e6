//! Progress lines on stderr while a command runs.

use freshet_core::executor::{RunEvent, RunObserver, StepOutcome};

use crate::output;

/// Prints progress lines on stderr as a run goes.
pub(super) struct Progress;

impl RunObserver for Progress {
    fn event(&self, event: &RunEvent<'_>) {
        match event {
            RunEvent::Observed {
                observation: o,
                changed,
            } => {
                let what = if *changed {
                    "new data version"
                } else {
                    "unchanged"
                };
                eprintln!(
                    "observed {}: {what} {} ({} file{}, {})",
                    o.asset,
                    output::short(o.data_version.as_str()),
                    o.file_count,
                    if o.file_count == 1 { "" } else { "s" },
                    output::bytes(o.byte_size)
                );
            }
            RunEvent::Planned { run_id, steps } => {
                eprintln!(
                    "run {run_id}: {} asset{} planned",
                    steps.len(),
                    if steps.len() == 1 { "" } else { "s" }
                );
            }
            RunEvent::StepStarted { key, index, total } => eprintln!("[{index}/{total}] {key} ..."),
            RunEvent::StepFinished {
                key,
                index,
                total,
                outcome,
            } => {
                let detail = match outcome {
                    StepOutcome::Materialized(m) => format!(
                        "materialized {} rows, {} in {}",
                        m.row_count,
                        output::bytes(m.byte_size),
                        output::millis(m.duration_us)
                    ),
                    StepOutcome::Skipped(reason) => format!("skipped: {reason}"),
                    StepOutcome::Failed { error, .. } => format!("FAILED: {error}"),
                };
                eprintln!("[{index}/{total}] {key} {detail}");
            }
            _ => {}
        }
    }
}
