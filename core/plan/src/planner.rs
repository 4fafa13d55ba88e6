//! The planner: from the graph and the recorded lineage, decides which assets are missing or stale,
//! why, and what a `materialize` must run.
//!
//! Pure and synchronous: it reads a [`Lineage`] snapshot the store loaded and does no IO.
//!
//! # Rules (as in Dagster, so users moving over see the same answers)
//!
//! - `missing`: never materialized (for a source: never observed). No causes.
//! - `stale`: materialized, with at least one direct cause:
//!   - `code`, "has a new code version": the definition's code version differs from the one
//!     recorded at the latest materialization;
//!   - `data`, "has a new dependency data version": a dependency's current data version differs
//!     from the one this asset consumed (names the dependency);
//!   - `dependencies`, "has a new dependency on X" / "removed dependency on X": the dependency set
//!     changed since the latest materialization.
//! - `fresh`: materialized (or observed) with no direct cause. Sources have no causes.
//!
//! Staleness is judged from direct inputs only: an asset whose inputs are unchanged is `fresh`
//! even when something further upstream is stale. Causes are ordered by category (code, data,
//! dependencies), then by dependency key.
//!
//! # Upstream
//!
//! Each report also lists what is behind among the asset's ancestors ([`UpstreamIssue`]), most
//! upstream first: an ancestor that is `missing` ("has never been materialized"), stale with a
//! `code` or `dependencies` cause (its reason), or whose current data an asset on the way has not
//! consumed yet (`data`, "has newer data not yet propagated", named by the asset or source with
//! the new data). The asset's own causes are not repeated there.
//!
//! # Scale
//!
//! Per-asset tables are indexed by the graph's dense index. [`Statuses::refresh`] re-judges one
//! asset and its readers after an edit; [`report_all`] is one topological pass that bounds each
//! upstream list to [`UPSTREAM_LIMIT`] (the `UPSTREAM_LIMIT` most upstream of a union are the most
//! upstream of the parts' bounded lists, so the bound loses nothing it shows).

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::freshness::{DataTimes, Freshness, FreshnessEvaluator};
use crate::graph::AssetGraph;
use crate::model::{AssetDef, AssetKey, AssetKind, FreshnessState, Materialization};
pub use crate::model::{Lineage, Status};

mod plan;

pub use plan::{
    NotRun, NotRunReason, PartitionRequest, Plan, PlanError, PlanRequest, PlannedStep,
    StepEstimate, StepKind, plan,
};

/// The category of a stale cause. Ordered as causes are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CauseCategory {
    /// The asset's own code changed.
    Code,
    /// An input's data changed.
    Data,
    /// The set of inputs changed.
    Dependencies,
}

impl CauseCategory {
    /// The lower-case name used in output.
    pub fn as_str(self) -> &'static str {
        match self {
            CauseCategory::Code => "code",
            CauseCategory::Data => "data",
            CauseCategory::Dependencies => "dependencies",
        }
    }
}

/// One reason an asset is stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleCause {
    /// Code, data or dependencies.
    pub category: CauseCategory,
    /// Stable wording (see the module documentation).
    pub reason: String,
    /// The dependency involved, for `data` and `dependencies` causes.
    pub dependency: Option<AssetKey>,
}

/// An asset's status with its direct causes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetStatus {
    /// The asset.
    pub key: AssetKey,
    /// Fresh, stale or missing.
    pub status: Status,
    /// Empty unless `status` is [`Status::Stale`].
    pub causes: Vec<StaleCause>,
}

/// Judges one asset against the lineage.
pub fn status_of(def: &AssetDef, lineage: &Lineage) -> AssetStatus {
    let key = def.key.clone();
    if def.kind == AssetKind::Source {
        let status = if lineage.observation(&key).is_some() {
            Status::Fresh
        } else {
            Status::Missing
        };
        return AssetStatus {
            key,
            status,
            causes: Vec::new(),
        };
    }
    let Some(m) = lineage.materialization(&key) else {
        return AssetStatus {
            key,
            status: Status::Missing,
            causes: Vec::new(),
        };
    };
    let causes = stale_causes(def, m, lineage);
    let status = if causes.is_empty() {
        Status::Fresh
    } else {
        Status::Stale
    };
    AssetStatus {
        key,
        status,
        causes,
    }
}

fn stale_causes(def: &AssetDef, m: &Materialization, lineage: &Lineage) -> Vec<StaleCause> {
    let mut causes = Vec::new();
    if def
        .code_version
        .as_ref()
        .is_some_and(|v| *v != m.code_version)
    {
        causes.push(StaleCause {
            category: CauseCategory::Code,
            reason: "has a new code version".to_owned(),
            dependency: None,
        });
    }
    let added = |dep: &AssetKey| StaleCause {
        category: CauseCategory::Dependencies,
        reason: format!("has a new dependency on {dep}"),
        dependency: Some(dep.clone()),
    };
    let removed = |dep: &AssetKey| StaleCause {
        category: CauseCategory::Dependencies,
        reason: format!("removed dependency on {dep}"),
        dependency: Some(dep.clone()),
    };
    // Both lists are sorted by key (definitions sort their deps; runs record inputs in that
    // order), so one merge finds what was added, removed or changed without allocating.
    let mut sorted_inputs = std::borrow::Cow::Borrowed(&m.inputs);
    if !m.inputs.is_sorted_by(|a, b| a.asset < b.asset) {
        sorted_inputs.to_mut().sort_by(|a, b| a.asset.cmp(&b.asset));
    }
    let (mut deps, mut inputs) = (def.deps.iter().peekable(), sorted_inputs.iter().peekable());
    loop {
        match (deps.peek(), inputs.peek()) {
            (None, None) => break,
            (Some(&dep), None) => {
                causes.push(added(dep));
                deps.next();
            }
            (None, Some(&input)) => {
                causes.push(removed(&input.asset));
                inputs.next();
            }
            (Some(&dep), Some(&input)) => match dep.cmp(&input.asset) {
                std::cmp::Ordering::Less => {
                    causes.push(added(dep));
                    deps.next();
                }
                std::cmp::Ordering::Greater => {
                    causes.push(removed(&input.asset));
                    inputs.next();
                }
                std::cmp::Ordering::Equal => {
                    if lineage.data_version(dep) != Some(&input.data_version) {
                        causes.push(StaleCause {
                            category: CauseCategory::Data,
                            reason: "has a new dependency data version".to_owned(),
                            dependency: Some(dep.clone()),
                        });
                    }
                    deps.next();
                    inputs.next();
                }
            },
        }
    }
    causes.sort_by(|a, b| (a.category, &a.dependency).cmp(&(b.category, &b.dependency)));
    causes
}

/// The status of every asset, indexed like the graph (see [`AssetGraph::index_of`]), kept current
/// as definitions and lineage change.
#[derive(Debug, Clone)]
pub struct Statuses {
    by_index: Vec<AssetStatus>,
}

impl Statuses {
    /// Judges every asset.
    pub fn compute(graph: &AssetGraph, lineage: &Lineage) -> Self {
        Self {
            by_index: (0..graph.len())
                .map(|i| status_of(graph.def(i), lineage))
                .collect(),
        }
    }

    /// The status of `key`.
    pub fn get(&self, graph: &AssetGraph, key: &AssetKey) -> Option<&AssetStatus> {
        graph.index_of(key).map(|i| &self.by_index[i])
    }

    /// The status of the asset at dense index `i`.
    pub fn at(&self, i: usize) -> &AssetStatus {
        &self.by_index[i]
    }

    /// Sets the status of the asset at dense index `i`: a partitioned asset's, which is judged
    /// from its partitions (its worst), not from the lineage of whole versions.
    pub fn set(&mut self, i: usize, status: AssetStatus) {
        if let Some(slot) = self.by_index.get_mut(i) {
            *slot = status;
        }
    }

    /// Every status, upstream first.
    pub fn iter<'a>(&'a self, graph: &'a AssetGraph) -> impl Iterator<Item = &'a AssetStatus> {
        graph.order().iter().map(|&i| &self.by_index[i])
    }

    /// Re-judges `key` and the assets reading it, after its definition (a code edit through
    /// [`AssetGraph::replace`] that kept the same assets) or its lineage changed. Nothing else can
    /// change: staleness is judged from direct inputs.
    pub fn refresh(&mut self, graph: &AssetGraph, lineage: &Lineage, key: &AssetKey) {
        if self.by_index.len() != graph.len() {
            *self = Self::compute(graph, lineage);
            return;
        }
        let Some(i) = graph.index_of(key) else {
            return;
        };
        self.by_index[i] = status_of(graph.def(i), lineage);
        for j in graph.downstream_of_index(i) {
            self.by_index[j] = status_of(graph.def(j), lineage);
        }
    }
}

/// Status and freshness of every asset, for `status:` and `freshness:` in selections: the one
/// implementation of [`crate::selection::AssetFacts`].
#[derive(Debug)]
pub struct Facts<'a> {
    graph: &'a AssetGraph,
    statuses: &'a Statuses,
    /// By graph index.
    freshness: Vec<FreshnessState>,
    /// Partitioned assets: the statuses some of their partitions have.
    partitions: Option<&'a HashMap<AssetKey, Vec<crate::partitions::PartitionStatus>>>,
}

impl<'a> Facts<'a> {
    /// Facts as of `now`.
    pub fn new(
        graph: &'a AssetGraph,
        lineage: &Lineage,
        statuses: &'a Statuses,
        now: DateTime<Utc>,
    ) -> Self {
        let mut evaluator = FreshnessEvaluator::new();
        let freshness = (0..graph.len())
            .map(|i| evaluator.evaluate(graph, lineage, i, now).state)
            .collect();
        Self {
            graph,
            statuses,
            freshness,
            partitions: None,
        }
    }

    /// Facts read off reports already made (by [`report_all`] on the same statuses), without
    /// evaluating freshness again.
    pub fn from_reports(
        graph: &'a AssetGraph,
        statuses: &'a Statuses,
        reports: &[AssetReport],
    ) -> Self {
        let mut freshness = vec![FreshnessState::None; graph.len()];
        for r in reports {
            if let Some(i) = graph.index_of(&r.key) {
                freshness[i] = r.freshness.state;
            }
        }
        Self {
            graph,
            statuses,
            freshness,
            partitions: None,
        }
    }

    /// These facts, with the statuses the partitions of partitioned assets have (for
    /// `partitions:`; without, no asset has any).
    pub fn with_partitions(
        mut self,
        partitions: &'a HashMap<AssetKey, Vec<crate::partitions::PartitionStatus>>,
    ) -> Self {
        self.partitions = Some(partitions);
        self
    }
}

impl crate::selection::AssetFacts for Facts<'_> {
    fn has_partitions(&self, key: &AssetKey, status: crate::partitions::PartitionStatus) -> bool {
        self.partitions
            .and_then(|p| p.get(key))
            .is_some_and(|present| present.contains(&status))
    }

    fn status(&self, key: &AssetKey) -> Status {
        self.statuses
            .get(self.graph, key)
            .map_or(Status::Missing, |s| s.status)
    }

    fn freshness(&self, key: &AssetKey) -> FreshnessState {
        self.graph
            .index_of(key)
            .map_or(FreshnessState::None, |i| self.freshness[i])
    }
}

/// How far behind an ancestor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UpstreamCategory {
    /// Never materialized (a source: never observed).
    Missing,
    /// Stale because its code changed.
    Code,
    /// Has data that some asset reading it has not consumed yet.
    Data,
    /// Stale because its dependencies changed.
    Dependencies,
}

impl UpstreamCategory {
    /// The lower-case name used in output: `missing`, `code`, `data` or `dependencies`.
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamCategory::Missing => "missing",
            UpstreamCategory::Code => "code",
            UpstreamCategory::Data => "data",
            UpstreamCategory::Dependencies => "dependencies",
        }
    }
}

/// Something upstream of an asset that is behind: work that, once done, may change the asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamIssue {
    /// The ancestor.
    pub key: AssetKey,
    /// How it is behind.
    pub category: UpstreamCategory,
    /// In words, to follow the key: "has newer data not yet propagated".
    pub reason: String,
}

/// How many upstream issues [`report_all`] lists per asset (the most upstream first).
pub const UPSTREAM_LIMIT: usize = 10;

/// An upstream issue in compact form while propagating: (topological rank, asset, which issue).
type Entry = (u32, u32, u16);
const MISSING: u16 = u16::MAX;
const NEW_DATA: u16 = u16::MAX - 1;

/// Everything known about one asset at one moment: status and causes, what upstream is behind,
/// freshness and data time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetReport {
    /// The asset.
    pub key: AssetKey,
    /// Source, SQL or Rust.
    pub kind: AssetKind,
    /// Fresh, stale or missing.
    pub status: Status,
    /// Direct causes, in the stable order of [`StaleCause`].
    pub causes: Vec<StaleCause>,
    /// Ancestors that are behind, most upstream first.
    pub upstream: Vec<UpstreamIssue>,
    /// Whether `upstream` was cut at [`UPSTREAM_LIMIT`].
    pub upstream_truncated: bool,
    /// Its freshness policy's verdict.
    pub freshness: Freshness,
    /// The time of the oldest source data it reflects.
    pub data_time: Option<DateTime<Utc>>,
}

impl AssetReport {
    /// The status in one line of words: "fresh, but upstream raw_orders has newer data not yet
    /// propagated", "stale: input raw_orders has a new data version".
    pub fn summary(&self) -> String {
        let status = self.status.as_str();
        match (self.causes.is_empty(), self.upstream.is_empty()) {
            (true, true) => status.to_owned(),
            (true, false) if self.status == Status::Fresh => {
                format!("{status}, but upstream {}", self.upstream_words())
            }
            (true, false) => format!("{status}; upstream {}", self.upstream_words()),
            (false, true) => format!("{status}: {}", self.causes_words()),
            (false, false) => format!(
                "{status}: {}; upstream {}",
                self.causes_words(),
                self.upstream_words()
            ),
        }
    }

    /// The causes in words, separated by "; ".
    pub fn causes_words(&self) -> String {
        let causes: Vec<String> = self.causes.iter().map(StaleCause::describe).collect();
        causes.join("; ")
    }

    /// What is behind upstream in words: "raw_orders has newer data not yet propagated, ...".
    pub fn upstream_words(&self) -> String {
        let mut issues: Vec<String> = self
            .upstream
            .iter()
            .map(|u| format!("{} {}", u.key, u.reason))
            .collect();
        if self.upstream_truncated {
            issues.push("and more".to_owned());
        }
        issues.join(", ")
    }
}

impl StaleCause {
    /// The cause in words, naming its dependency: "input raw_orders has a new data version".
    pub fn describe(&self) -> String {
        match (self.category, &self.dependency) {
            (CauseCategory::Data, Some(dep)) => format!("input {dep} has a new data version"),
            _ => self.reason.clone(),
        }
    }
}

/// Reports on every asset, upstream first, each listing at most [`UPSTREAM_LIMIT`] upstream
/// issues. One pass over the graph.
pub fn report_all(
    graph: &AssetGraph,
    lineage: &Lineage,
    statuses: &Statuses,
    now: DateTime<Utc>,
) -> Vec<AssetReport> {
    let mut reporter = Reporter::new(graph, lineage, statuses, now);
    // pending[i]: issues at or above i that would flow into whatever reads i.
    let mut pending: Vec<(Vec<Entry>, bool)> = vec![(Vec::new(), false); graph.len()];
    let mut out = Vec::with_capacity(graph.len());
    for &i in graph.order() {
        let mut upstream = Vec::new();
        let mut truncated = false;
        for d in graph.upstream_of_index(i) {
            upstream.extend_from_slice(&pending[d].0);
            truncated |= pending[d].1;
        }
        truncated |= bound(&mut upstream);
        let mut own = upstream.clone();
        own.extend(reporter.own_issues(i));
        let own_truncated = truncated | bound(&mut own);
        pending[i] = (own, own_truncated);
        out.push(reporter.report(i, &upstream, truncated));
    }
    out
}

/// The report on one asset, listing every upstream issue.
pub fn report_one(
    graph: &AssetGraph,
    lineage: &Lineage,
    statuses: &Statuses,
    key: &AssetKey,
    now: DateTime<Utc>,
) -> Option<AssetReport> {
    let i = graph.index_of(key)?;
    let mut reporter = Reporter::new(graph, lineage, statuses, now);
    let mut seen = vec![false; graph.len()];
    let mut queue: Vec<usize> = graph.upstream_of_index(i).collect();
    let mut upstream = Vec::new();
    while let Some(a) = queue.pop() {
        if std::mem::replace(&mut seen[a], true) {
            continue;
        }
        upstream.extend(reporter.own_issues(a));
        queue.extend(graph.upstream_of_index(a).filter(|&d| !seen[d]));
    }
    upstream.sort_unstable();
    upstream.dedup();
    Some(reporter.report(i, &upstream, false))
}

/// Sorts, dedups and cuts to [`UPSTREAM_LIMIT`]; whether anything was cut.
fn bound(entries: &mut Vec<Entry>) -> bool {
    entries.sort_unstable();
    entries.dedup();
    let cut = entries.len() > UPSTREAM_LIMIT;
    entries.truncate(UPSTREAM_LIMIT);
    cut
}

/// What building reports needs: the inputs, each asset's topological rank, and the freshness and
/// data-time caches.
struct Reporter<'a> {
    graph: &'a AssetGraph,
    lineage: &'a Lineage,
    statuses: &'a Statuses,
    now: DateTime<Utc>,
    rank: Vec<u32>,
    freshness: FreshnessEvaluator,
    data_times: DataTimes,
}

impl<'a> Reporter<'a> {
    fn new(
        graph: &'a AssetGraph,
        lineage: &'a Lineage,
        statuses: &'a Statuses,
        now: DateTime<Utc>,
    ) -> Self {
        let mut rank = vec![0u32; graph.len()];
        for (pos, &i) in graph.order().iter().enumerate() {
            rank[i] = u32::try_from(pos).unwrap_or(u32::MAX);
        }
        Self {
            graph,
            lineage,
            statuses,
            now,
            rank,
            freshness: FreshnessEvaluator::new(),
            data_times: DataTimes::new(graph.len()),
        }
    }

    /// The issues asset `i` itself contributes to what is downstream: being missing, its code
    /// and dependency causes, and for each data cause the input whose new data it has not
    /// consumed.
    fn own_issues(&self, i: usize) -> impl Iterator<Item = Entry> + '_ {
        let status = self.statuses.at(i);
        let idx = |j: usize| u32::try_from(j).unwrap_or(u32::MAX);
        // A partitioned asset is judged partition by partition (its partitions say what is
        // behind); it is no whole asset missing.
        let whole = self.graph.def(i).partitions.is_none();
        let missing =
            (status.status == Status::Missing && whole).then(|| (self.rank[i], idx(i), MISSING));
        let causes = status
            .causes
            .iter()
            .enumerate()
            .filter_map(move |(slot, c)| {
                if c.category == CauseCategory::Data {
                    let d = self.graph.index_of(c.dependency.as_ref()?)?;
                    Some((self.rank[d], idx(d), NEW_DATA))
                } else {
                    Some((
                        self.rank[i],
                        idx(i),
                        u16::try_from(slot).unwrap_or(MISSING - 2),
                    ))
                }
            });
        missing.into_iter().chain(causes)
    }

    /// The report on asset `i`, with the given upstream issues.
    fn report(&mut self, i: usize, upstream: &[Entry], upstream_truncated: bool) -> AssetReport {
        let def = self.graph.def(i);
        let status = self.statuses.at(i);
        let upstream = upstream
            .iter()
            .map(|&(_, a, slot)| self.upstream_issue(a as usize, slot))
            .collect();
        AssetReport {
            key: def.key.clone(),
            kind: def.kind,
            status: status.status,
            causes: status.causes.clone(),
            upstream,
            upstream_truncated,
            freshness: self
                .freshness
                .evaluate(self.graph, self.lineage, i, self.now),
            data_time: self.data_times.get(self.graph, self.lineage, i),
        }
    }

    fn upstream_issue(&self, a: usize, slot: u16) -> UpstreamIssue {
        let def = self.graph.def(a);
        let (category, reason) = match slot {
            MISSING if def.kind == AssetKind::Source => (
                UpstreamCategory::Missing,
                "has never been observed".to_owned(),
            ),
            MISSING => (
                UpstreamCategory::Missing,
                "has never been materialized".to_owned(),
            ),
            NEW_DATA => (
                UpstreamCategory::Data,
                "has newer data not yet propagated".to_owned(),
            ),
            slot => {
                let cause = &self.statuses.at(a).causes[usize::from(slot)];
                let category = match cause.category {
                    CauseCategory::Code => UpstreamCategory::Code,
                    CauseCategory::Data => UpstreamCategory::Data,
                    CauseCategory::Dependencies => UpstreamCategory::Dependencies,
                };
                (category, cause.reason.clone())
            }
        };
        UpstreamIssue {
            key: def.key.clone(),
            category,
            reason,
        }
    }
}

#[cfg(test)]
mod tests;
