//! What a run tells its observer as it goes, and what it returns.

use std::fmt;

use crate::model::{AssetKey, Materialization, Observation, RunId};
use crate::planner::PlannedStep;
use crate::store::LogLine;

/// Receives progress as a run goes. Called from the run's task; keep it quick.
pub trait RunObserver: Send + Sync {
    /// One event.
    fn event(&self, event: &RunEvent<'_>);
}

/// Ignores every event.
impl RunObserver for () {
    fn event(&self, _: &RunEvent<'_>) {}
}

/// Progress of `observe` and `materialize`.
#[derive(Debug)]
#[non_exhaustive]
pub enum RunEvent<'a> {
    /// A source was observed; `changed` when its data version moved (or it was new).
    Observed {
        /// The observation.
        observation: &'a Observation,
        /// Whether it was recorded as a new version.
        changed: bool,
    },
    /// A run starts with these steps.
    Planned {
        /// The run.
        run_id: &'a RunId,
        /// Its steps, upstream first.
        steps: &'a [PlannedStep],
    },
    /// A step starts computing.
    StepStarted {
        /// The asset.
        key: &'a AssetKey,
        /// 1-based position in the plan.
        index: usize,
        /// Number of steps.
        total: usize,
    },
    /// A step ended.
    StepFinished {
        /// The asset.
        key: &'a AssetKey,
        /// 1-based position in the plan.
        index: usize,
        /// Number of steps.
        total: usize,
        /// How it ended.
        outcome: &'a StepOutcome,
    },
    /// An attempt at a step failed in a way that may pass; it is tried again after `delay`.
    StepRetrying {
        /// The asset.
        key: &'a AssetKey,
        /// The attempt that failed (1-based).
        attempt: u32,
        /// How long until the next.
        delay: std::time::Duration,
        /// Why it failed, in one line.
        error: &'a str,
    },
    /// A line was added to the run's log (also recorded in the store).
    Log {
        /// The run.
        run_id: &'a RunId,
        /// The line.
        line: &'a LogLine,
    },
}

/// How one step of a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    /// Written and recorded.
    Materialized(Box<Materialization>),
    /// Not run, and why.
    Skipped(SkipReason),
    /// Stopped while it ran (a cancel, its process shutting down): nothing of it was recorded.
    Cancelled,
    /// Failed, with the error in one line.
    Failed {
        /// What went wrong.
        error: String,
        /// Whether trying again may succeed.
        retryable: bool,
    },
}

/// The result of `materialize`.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    /// `None` when there was nothing to do and no run was recorded.
    pub run_id: Option<RunId>,
    /// Each planned step and how it ended, upstream first.
    pub steps: Vec<(AssetKey, StepOutcome)>,
    /// Whether the run was stopped before it ended.
    pub interrupted: bool,
}

impl RunReport {
    /// Whether any step failed.
    pub fn failed(&self) -> bool {
        self.steps
            .iter()
            .any(|(_, o)| matches!(o, StepOutcome::Failed { .. }))
    }

    /// Number of steps materialized.
    pub fn materialized(&self) -> usize {
        self.steps
            .iter()
            .filter(|(_, o)| matches!(o, StepOutcome::Materialized(_)))
            .count()
    }
}

/// Why a step was not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// Its inputs came out unchanged, so it would write what it has (early cut-off).
    InputsUnchanged,
    /// An asset it reads failed in this run (or was skipped because one upstream of it did).
    UpstreamFailed(AssetKey),
    /// The run was stopped before this step started.
    Stopped,
    /// Another run materialized it while this one waited for it (single flight).
    DoneElsewhere(RunId),
}

impl SkipReason {
    /// Whether skipping is the plan working as meant (nothing to do), not something going wrong.
    pub fn is_expected(&self) -> bool {
        matches!(
            self,
            SkipReason::InputsUnchanged | SkipReason::DoneElsewhere(_)
        )
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::InputsUnchanged => f.write_str("inputs unchanged"),
            SkipReason::UpstreamFailed(dep) => write!(f, "upstream {dep} failed"),
            SkipReason::Stopped => f.write_str("the run was stopped"),
            SkipReason::DoneElsewhere(run) => write!(f, "materialized meanwhile by run {run}"),
        }
    }
}
