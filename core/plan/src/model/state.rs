//! The verdicts every part of Freshet shows: an asset's staleness status and its freshness state.

use std::fmt;

/// An asset's staleness status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// Materialized and nothing it depends on directly has changed.
    Fresh,
    /// Materialized, but its code, inputs or dependency set changed since.
    Stale,
    /// Never materialized (or, for a source, never observed).
    Missing,
}

impl Status {
    /// The lower-case name used in output.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Fresh => "fresh",
            Status::Stale => "stale",
            Status::Missing => "missing",
        }
    }
}

/// The result of evaluating an asset's freshness policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FreshnessState {
    /// Within the policy.
    Pass,
    /// Past the warning threshold, not yet failing.
    Warn,
    /// Overdue.
    Fail,
    /// Has a policy but was never materialized (for a source: never observed).
    Unknown,
    /// Has no policy.
    None,
}

impl FreshnessState {
    /// The lower-case name used in output and selections.
    pub fn as_str(self) -> &'static str {
        match self {
            FreshnessState::Pass => "pass",
            FreshnessState::Warn => "warn",
            FreshnessState::Fail => "fail",
            FreshnessState::Unknown => "unknown",
            FreshnessState::None => "none",
        }
    }
}

impl fmt::Display for FreshnessState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
