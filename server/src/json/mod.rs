//! The JSON wire format: every body the HTTP API answers and every `--json` output of the command
//! line is one of these shapes, converted from core values here.
//!
//! **Invariant:** fields are added, never renamed or removed; a field that was absent when empty
//! stays absent and one that was `null` stays `null`. The API's shapes are documented in
//! `serve/openapi.json`.
//!
//! **Boundary:** core types never become the wire format by their own `Serialize`: the shapes are
//! declared here, so core may reshape its types without changing what a client reads. Enums are
//! written with their `as_str` names (`stale`, `code`, `dependencies`): those names are part of
//! the format and never change.
//!
//! Field order is not part of the format (clients read JSON objects by name). Several API bodies
//! list their fields alphabetically, the order they had when they were built as JSON values.

use chrono::{DateTime, SecondsFormat, Utc};
use freshet_core::freshness::Freshness;
use freshet_core::planner::UpstreamIssue;
use freshet_core::{AssetDef, Lineage, StaleCause};
use serde::Serialize;

mod assets;
mod automation;
mod cli;
mod events;
mod partitions;
mod runs;

pub use assets::*;
pub use automation::*;
pub use cli::*;
pub use events::*;
pub use partitions::*;
pub use runs::*;

/// How precise times are: the command line prints seconds, the API microseconds (so consecutive
/// events sort).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// `2026-11-22T10:03:12Z`.
    Seconds,
    /// `2026-11-22T10:03:12.123456Z`.
    Micros,
}

impl Precision {
    /// `t` in RFC 3339, UTC, to this precision.
    pub fn time(self, t: DateTime<Utc>) -> String {
        let format = match self {
            Precision::Seconds => SecondsFormat::Secs,
            Precision::Micros => SecondsFormat::Micros,
        };
        t.to_rfc3339_opts(format, true)
    }
}

/// An API time: RFC 3339 in UTC with microseconds.
pub(crate) fn micros(t: DateTime<Utc>) -> String {
    Precision::Micros.time(t)
}

/// Milliseconds from `a` to `b`, with the microseconds as a fraction.
fn millis_between(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    (b - a).num_microseconds().unwrap_or(0) as f64 / 1000.0
}

/// One reason an asset is stale.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CauseJson {
    /// `code`, `data` or `dependencies`.
    pub category: &'static str,
    /// Stable wording, e.g. `has a new dependency data version`.
    pub reason: String,
    /// The dependency involved. The command line leaves the field out when there is none
    /// (`None`); the API says `null` (`Some(None)`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dependency: Option<Option<String>>,
    /// The API only: the cause in a sentence with its times and versions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub words: Option<String>,
}

impl CauseJson {
    /// A cause as `status --json` prints it.
    pub fn new(c: &StaleCause) -> Self {
        Self {
            category: c.category.as_str(),
            reason: c.reason.clone(),
            dependency: c.dependency.as_ref().map(|d| Some(d.to_string())),
            words: None,
        }
    }

    /// A cause as the API answers it: with `words` and an explicit `dependency`.
    pub fn explained(def: &AssetDef, c: &StaleCause, lineage: &Lineage) -> Self {
        Self {
            category: c.category.as_str(),
            reason: c.reason.clone(),
            dependency: Some(c.dependency.as_ref().map(ToString::to_string)),
            words: Some(crate::words::cause_words(def, c, lineage)),
        }
    }
}

/// One ancestor that is behind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpstreamJson {
    /// The ancestor.
    pub key: String,
    /// `missing`, `code`, `data` or `dependencies`.
    pub category: &'static str,
    /// In words, following the key: `has newer data not yet propagated`.
    pub reason: String,
}

impl From<&UpstreamIssue> for UpstreamJson {
    fn from(u: &UpstreamIssue) -> Self {
        Self {
            key: u.key.to_string(),
            category: u.category.as_str(),
            reason: u.reason.clone(),
        }
    }
}

/// A freshness policy's verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FreshnessJson {
    /// `pass`, `warn`, `fail`, `unknown` or `none`.
    pub state: &'static str,
    /// The policy in compact form, e.g. `max_age=1d warn_after=12h`.
    pub policy: Option<String>,
    /// The latest materialization (for a source: its latest change).
    pub last_updated: Option<String>,
    /// When the state next changes if nothing is materialized.
    pub next_change_at: Option<String>,
    /// The state it changes to then.
    pub next_state: Option<&'static str>,
}

impl FreshnessJson {
    /// `f`, with times to `precision`.
    pub fn new(f: &Freshness, precision: Precision) -> Self {
        Self {
            state: f.state.as_str(),
            policy: f.policy.clone(),
            last_updated: f.last_updated.map(|t| precision.time(t)),
            next_change_at: f.next_change.map(|c| precision.time(c.at)),
            next_state: f.next_change.map(|c| c.state.as_str()),
        }
    }
}

/// A dependency edge, upstream to downstream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EdgeJson<'a> {
    /// The upstream asset.
    pub from: &'a str,
    /// The asset reading it.
    pub to: &'a str,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
