//! The shapes of the command line's `--json` output: `status`, `assets`, `lineage` and `plan`.

use freshet_core::planner::{
    AssetReport, NotRun, NotRunReason, Plan, PlannedStep, StepEstimate, StepKind,
};
use freshet_core::{AssetDef, AssetGraph, Lineage};
use serde::Serialize;

use super::{CauseJson, EdgeJson, FreshnessJson, Precision, UpstreamJson};

/// One asset in `status --json` (a list) and `status KEY --json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusJson {
    /// The asset key.
    pub key: String,
    /// `source`, `sql` or `rust`.
    pub kind: &'static str,
    /// Its group.
    pub group: String,
    /// `fresh`, `stale` or `missing`.
    pub status: &'static str,
    /// Why it is stale (empty otherwise), in a stable order: code, data, dependencies, then by
    /// dependency key.
    pub causes: Vec<CauseJson>,
    /// Ancestors that are behind, most upstream first.
    pub upstream: Vec<UpstreamJson>,
    /// Whether `upstream` was cut short (`status KEY` lists all).
    pub upstream_truncated: bool,
    /// The status in one line of words.
    pub summary: String,
    /// The freshness policy's verdict.
    pub freshness: FreshnessJson,
    /// The time of the oldest source data it reflects (RFC 3339, UTC).
    pub data_time: Option<String>,
    /// The current data version, if any.
    pub data_version: Option<String>,
    /// The code version of its definition (`null` for sources).
    pub code_version: Option<String>,
    /// When its current version was written (RFC 3339, UTC).
    pub last_materialized_at: Option<String>,
    /// For sources: when its current data version was first observed.
    pub last_observed_at: Option<String>,
    /// URL of the current version's Parquet object.
    pub location: Option<String>,
    /// Its latest attempt that failed after its current version (`null` when none).
    pub last_failure: Option<LastFailureJson>,
    /// Why its file does not load, one line naming the file (`null` when it loads): it cannot
    /// be materialized until the file is fixed.
    pub load_error: Option<String>,
    /// For a source whose files are gone: why, and when they were last seen (its `status` is
    /// then `missing`); `null` otherwise. The same shape as the API's.
    pub files_gone: Option<super::FilesGoneJson>,
    /// For a partitioned asset, its partitions in brief (its `status` is its worst partition's
    /// as fresh, stale or missing); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partitions: Option<super::PartitionsJson>,
}

/// An asset's latest failed attempt, in `status --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastFailureJson {
    /// When it failed (RFC 3339, UTC).
    pub at: String,
    /// The run it failed in.
    pub run_id: String,
    /// The error, in one line.
    pub error: String,
}

impl StatusJson {
    /// `def`'s status as `report` says, with its current version from `lineage` and its latest
    /// failed attempt, if any came after it.
    pub fn new(
        def: &AssetDef,
        report: &AssetReport,
        lineage: &Lineage,
        failure: Option<&freshet_core::store::Failure>,
    ) -> Self {
        let time = |t| Precision::Seconds.time(t);
        let m = lineage.materialization(&def.key);
        Self {
            key: def.key.to_string(),
            kind: def.kind.as_str(),
            group: def.group.clone(),
            status: report.status.as_str(),
            causes: report.causes.iter().map(CauseJson::new).collect(),
            upstream: report.upstream.iter().map(UpstreamJson::from).collect(),
            upstream_truncated: report.upstream_truncated,
            summary: report.summary(),
            freshness: FreshnessJson::new(&report.freshness, Precision::Seconds),
            data_time: report.data_time.map(time),
            data_version: lineage.data_version(&def.key).map(ToString::to_string),
            code_version: def.code_version.as_ref().map(ToString::to_string),
            last_materialized_at: m.map(|m| time(m.created_at)),
            last_observed_at: lineage.observation(&def.key).map(|o| time(o.observed_at)),
            location: m.map(|m| m.location.clone()),
            last_failure: failure.map(|f| LastFailureJson {
                at: time(f.at),
                run_id: f.run_id.to_string(),
                error: f.error.clone(),
            }),
            load_error: None,
            files_gone: None,
            partitions: None,
        }
    }
}

/// One asset in `assets --json` and `lineage --json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AssetJson<'a> {
    /// The asset key.
    pub key: String,
    /// `source`, `sql` or `rust`.
    pub kind: &'static str,
    /// Its group.
    pub group: &'a str,
    /// What it reads, sorted.
    pub deps: Vec<String>,
    /// Its description.
    pub description: Option<&'a str>,
    /// Its tags, sorted.
    pub tags: Vec<&'a str>,
    /// Who is responsible.
    pub owners: &'a [String],
    /// The code version of its definition (`null` for sources).
    pub code_version: Option<String>,
    /// Where it is defined: a path, or a Rust file and line.
    pub origin: String,
}

impl<'a> From<&'a AssetDef> for AssetJson<'a> {
    fn from(d: &'a AssetDef) -> Self {
        Self {
            key: d.key.to_string(),
            kind: d.kind.as_str(),
            group: &d.group,
            deps: d.deps.iter().map(ToString::to_string).collect(),
            description: d.description.as_deref(),
            tags: d.tags.iter().map(String::as_str).collect(),
            owners: &d.owners,
            code_version: d.code_version.as_ref().map(ToString::to_string),
            origin: d.origin.to_string(),
        }
    }
}

/// `lineage --json`: the assets, upstream first, and the edges between them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LineageJson<'a> {
    /// Every asset.
    pub assets: Vec<AssetJson<'a>>,
    /// Every dependency.
    pub edges: Vec<EdgeJson<'a>>,
}

impl<'a> From<&'a AssetGraph> for LineageJson<'a> {
    fn from(graph: &'a AssetGraph) -> Self {
        Self {
            assets: graph.iter().map(AssetJson::from).collect(),
            edges: graph
                .iter()
                .flat_map(|d| {
                    d.deps.iter().map(|dep| EdgeJson {
                        from: dep.as_str(),
                        to: d.key.as_str(),
                    })
                })
                .collect(),
        }
    }
}

/// `plan --json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanJson<'a> {
    /// The steps, upstream first.
    pub steps: Vec<PlanStepJson<'a>>,
    /// Considered assets that will not run, and why.
    pub not_run: Vec<NotRunJson<'a>>,
    /// The totals.
    pub estimate: TotalEstimateJson,
}

impl<'a> PlanJson<'a> {
    /// `plan` with each step's reasons and estimate (both in step order).
    pub fn new(plan: &'a Plan, reasons: &'a [Vec<String>], estimates: &[StepEstimate]) -> Self {
        Self {
            steps: plan
                .steps
                .iter()
                .zip(reasons)
                .zip(estimates)
                .map(|((step, reasons), e)| PlanStepJson::new(step, reasons, e))
                .collect(),
            not_run: plan.not_run.iter().map(NotRunJson::from).collect(),
            estimate: TotalEstimateJson::new(estimates),
        }
    }
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanStepJson<'a> {
    /// The asset to materialize.
    pub key: &'a str,
    /// `requested`, `needed` or `conditional`.
    pub kind: &'static str,
    /// Why, in words.
    pub reasons: &'a [String],
    /// What it is expected to cost.
    pub estimate: StepEstimateJson,
}

impl<'a> PlanStepJson<'a> {
    /// `step` with its reasons and estimate.
    pub fn new(step: &'a PlannedStep, reasons: &'a [String], estimate: &StepEstimate) -> Self {
        Self {
            key: step.key.as_str(),
            kind: match step.kind {
                StepKind::Requested => "requested",
                StepKind::Needed => "needed",
                StepKind::Conditional => "conditional",
            },
            reasons,
            estimate: StepEstimateJson::from(estimate),
        }
    }
}

/// The expected cost of one step; `null` without history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StepEstimateJson {
    /// The median duration of its latest materializations, in whole milliseconds.
    pub duration_ms: Option<u64>,
    /// The size of the inputs it reads.
    pub bytes_read: Option<u64>,
}

impl From<&StepEstimate> for StepEstimateJson {
    fn from(e: &StepEstimate) -> Self {
        Self {
            duration_ms: e
                .duration
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            bytes_read: e.bytes_read,
        }
    }
}

/// A considered asset left out of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotRunJson<'a> {
    /// The asset.
    pub key: &'a str,
    /// `fresh`, `source` or `blocked`.
    pub reason: &'static str,
    /// For `blocked`: the input without data (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<&'a str>,
}

impl<'a> From<&'a NotRun> for NotRunJson<'a> {
    fn from(n: &'a NotRun) -> Self {
        let (reason, input) = match &n.reason {
            NotRunReason::Fresh => ("fresh", None),
            NotRunReason::Source => ("source", None),
            NotRunReason::Blocked { input } => ("blocked", Some(input.as_str())),
        };
        Self {
            key: n.key.as_str(),
            reason,
            input,
        }
    }
}

/// The totals of a plan's estimates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TotalEstimateJson {
    /// Sum of the steps' estimated durations that are known, in milliseconds.
    pub duration_ms: u64,
    /// Sum of the bytes the steps read, where known.
    pub bytes_read: u64,
    /// Steps without history, whose cost is not (wholly) in the totals.
    pub steps_without_estimate: usize,
}

impl TotalEstimateJson {
    /// The totals of `estimates`.
    pub fn new(estimates: &[StepEstimate]) -> Self {
        Self {
            duration_ms: estimates
                .iter()
                .filter_map(|e| e.duration)
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                .sum(),
            bytes_read: estimates.iter().filter_map(|e| e.bytes_read).sum(),
            steps_without_estimate: estimates
                .iter()
                .filter(|e| e.duration.is_none() || e.bytes_read.is_none())
                .count(),
        }
    }
}
