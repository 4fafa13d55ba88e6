//! Freshness: whether each asset was materialized recently enough for its policy, judged against a
//! clock that tests can move.

/// The result of evaluating an asset's freshness policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
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
