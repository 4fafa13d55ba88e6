//! The run lifecycle: what a run and each of its steps can be, and the moves allowed between those
//! states, in one place. The store applies a move only from a state this allows (one conditional
//! `UPDATE`), so two writers cannot both finish a run, and a finished run stays finished.
//!
//! ```text
//! run:   queued ──► running ──► succeeded | failed | cancelled
//!           └──────────────────► cancelled | failed      (never started)
//! step:  pending ──► running ──► materialized | failed | cancelled
//!           └──────────────────► skipped                 (not needed, upstream failed, stopped)
//! ```

/// What a run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    /// Materializes a plan.
    Materialize,
    /// Observes sources.
    Observe,
}

impl RunKind {
    /// `materialize` or `observe`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Materialize => "materialize",
            RunKind::Observe => "observe",
        }
    }

    /// Parses [`RunKind::as_str`]'s words.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "materialize" => RunKind::Materialize,
            "observe" => RunKind::Observe,
            _ => return None,
        })
    }
}

/// How a run ended (or that it has not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// Requested, waiting for the run before it.
    Queued,
    /// Started and not yet finished.
    Running,
    /// Every step succeeded or was skipped as unneeded.
    Succeeded,
    /// At least one step failed, or the process stopped it.
    Failed,
    /// Stopped on request.
    Cancelled,
}

impl RunStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [RunStatus; 5] = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ];

    /// The status as stored and shown: `queued`, `running`, `succeeded`, `failed`, `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    /// Parses [`RunStatus::as_str`]'s words.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => RunStatus::Queued,
            "running" => RunStatus::Running,
            "succeeded" => RunStatus::Succeeded,
            "failed" => RunStatus::Failed,
            "cancelled" => RunStatus::Cancelled,
            _ => return None,
        })
    }

    /// Whether the run has ended.
    pub fn is_finished(self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Running)
    }

    /// The statuses a run may move to `self` from: the one table of allowed moves. A run is
    /// recorded first as queued (requested) or running (started at once).
    pub fn comes_from(self) -> &'static [RunStatus] {
        match self {
            RunStatus::Queued => &[],
            RunStatus::Running => &[RunStatus::Queued],
            RunStatus::Succeeded => &[RunStatus::Running],
            RunStatus::Failed | RunStatus::Cancelled => &[RunStatus::Queued, RunStatus::Running],
        }
    }

    /// Whether a run in this status may move to `next`.
    pub fn can_become(self, next: RunStatus) -> bool {
        next.comes_from().contains(&self)
    }
}

/// Where one step of a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepState {
    /// Planned, not started.
    Pending,
    /// Computing now.
    Running,
    /// Written and recorded.
    Materialized,
    /// Not run: unneeded, or upstream failed, or the run stopped before it started.
    Skipped,
    /// Failed.
    Failed,
    /// Stopped while it ran (its run cancelled or its process shut down); nothing recorded.
    Cancelled,
}

impl StepState {
    /// `pending`, `running`, `materialized`, `skipped`, `failed` or `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Pending => "pending",
            StepState::Running => "running",
            StepState::Materialized => "materialized",
            StepState::Skipped => "skipped",
            StepState::Failed => "failed",
            StepState::Cancelled => "cancelled",
        }
    }

    /// Parses [`StepState::as_str`]'s words.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => StepState::Pending,
            "running" => StepState::Running,
            "materialized" => StepState::Materialized,
            "skipped" => StepState::Skipped,
            "failed" => StepState::Failed,
            "cancelled" => StepState::Cancelled,
            _ => return None,
        })
    }

    /// Whether the step has ended.
    pub fn is_finished(self) -> bool {
        !matches!(self, StepState::Pending | StepState::Running)
    }

    /// The states a step may move to `self` from. Steps are recorded as pending when the run is
    /// planned; a step is skipped before it starts (not needed, upstream failed, the run stopped)
    /// and cancelled while it runs (the run stopped). Steps recorded as skipped while running
    /// before `cancelled` existed stay valid records.
    pub fn comes_from(self) -> &'static [StepState] {
        match self {
            StepState::Pending => &[],
            StepState::Running => &[StepState::Pending],
            StepState::Materialized | StepState::Failed | StepState::Cancelled => {
                &[StepState::Running]
            }
            StepState::Skipped => &[StepState::Pending, StepState::Running],
        }
    }

    /// Whether a step in this state may move to `next`.
    pub fn can_become(self, next: StepState) -> bool {
        next.comes_from().contains(&self)
    }
}

/// How much a log line matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Progress.
    Info,
    /// Something skipped or odd.
    Warn,
    /// A failure.
    Error,
}

impl LogLevel {
    /// `info`, `warn` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }

    /// Parses [`LogLevel::as_str`]'s words.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "info" => LogLevel::Info,
            "warn" => LogLevel::Warn,
            "error" => LogLevel::Error,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNS: [RunStatus; 5] = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ];
    const STEPS: [StepState; 6] = [
        StepState::Pending,
        StepState::Running,
        StepState::Materialized,
        StepState::Skipped,
        StepState::Failed,
        StepState::Cancelled,
    ];

    #[test]
    fn a_finished_run_never_moves_again() {
        for from in RUNS.into_iter().filter(|s| s.is_finished()) {
            for to in RUNS {
                assert!(!from.can_become(to), "{} -> {}", from.as_str(), to.as_str());
            }
        }
        assert!(RunStatus::Queued.can_become(RunStatus::Running));
        assert!(RunStatus::Queued.can_become(RunStatus::Cancelled));
        assert!(RunStatus::Running.can_become(RunStatus::Succeeded));
        assert!(!RunStatus::Queued.can_become(RunStatus::Succeeded));
        assert!(!RunStatus::Running.can_become(RunStatus::Queued));
    }

    #[test]
    fn a_finished_step_never_moves_again() {
        for from in STEPS.into_iter().filter(|s| s.is_finished()) {
            for to in STEPS {
                assert!(!from.can_become(to), "{} -> {}", from.as_str(), to.as_str());
            }
        }
        assert!(StepState::Pending.can_become(StepState::Skipped));
        assert!(!StepState::Pending.can_become(StepState::Materialized));
        assert!(StepState::Running.can_become(StepState::Cancelled));
        assert!(!StepState::Pending.can_become(StepState::Cancelled));
    }

    #[test]
    fn words_round_trip_and_unknown_words_are_refused() {
        for s in RUNS {
            assert_eq!(RunStatus::parse(s.as_str()), Some(s));
        }
        for s in STEPS {
            assert_eq!(StepState::parse(s.as_str()), Some(s));
        }
        for k in [RunKind::Materialize, RunKind::Observe] {
            assert_eq!(RunKind::parse(k.as_str()), Some(k));
        }
        for l in [LogLevel::Info, LogLevel::Warn, LogLevel::Error] {
            assert_eq!(LogLevel::parse(l.as_str()), Some(l));
        }
        assert_eq!(RunStatus::parse("done"), None);
        assert_eq!(StepState::parse(""), None);
        assert_eq!(RunKind::parse("backfill"), None);
        assert_eq!(LogLevel::parse("debug"), None);
    }
}
