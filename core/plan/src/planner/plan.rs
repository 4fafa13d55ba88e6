//! Plans: what a `materialize` runs, in order and why, what it leaves out and why, and what it is
//! expected to cost.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::time::Duration;

use super::Statuses;
use crate::graph::AssetGraph;
use crate::model::{AssetKey, AssetKind, Lineage, Status};

/// What to plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanRequest {
    /// The assets considered; `None` for every asset.
    pub selection: Option<BTreeSet<AssetKey>>,
    /// Only what is missing or stale (plus what may change downstream of it), rather than every
    /// selected asset.
    pub stale_only: bool,
    /// With `stale_only`: selected assets to materialize whatever their status (a cron tick or
    /// a freshness deadline came) beside what is behind.
    pub force: BTreeSet<AssetKey>,
    /// The partitions of the selected partitioned assets to run (`--partition`, `--range`);
    /// `None`: those missing or stale.
    pub partitions: Option<PartitionRequest>,
}

/// Partitions named on a request, by key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionRequest {
    /// One partition.
    Key(String),
    /// Partitions `from` to `to`, both included.
    Range { from: String, to: String },
}

impl PlanRequest {
    /// Everything missing or stale: what `freshet materialize` runs by default.
    pub fn stale() -> Self {
        Self {
            selection: None,
            stale_only: true,
            force: BTreeSet::new(),
            partitions: None,
        }
    }
}

/// Why a step is in a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// Selected and run whatever its status.
    Requested,
    /// Missing or stale now: runs.
    Needed,
    /// Downstream of a needed step: runs only if, when its turn comes, an input turned out to
    /// change (the executor re-judges it then: early cut-off).
    Conditional,
}

/// One step of a plan. [`Plan::reasons`] says why in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedStep {
    /// The asset to materialize.
    pub key: AssetKey,
    /// Why it is in the plan.
    pub kind: StepKind,
    /// For a partitioned asset, the partitions it runs, as ranges of ordinals in order (the
    /// executor decides them when the run starts); `None` otherwise.
    pub partitions: Option<Vec<std::ops::Range<u32>>>,
}

/// Why a considered asset is not in a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotRunReason {
    /// Nothing it reads has changed.
    Fresh,
    /// Sources are observed at the start of every run, never materialized.
    Source,
    /// It would read an input that has no data and is not in the plan.
    Blocked {
        /// The input without data.
        input: AssetKey,
    },
}

impl fmt::Display for NotRunReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotRunReason::Fresh => f.write_str("fresh"),
            NotRunReason::Source => f.write_str("source: observed at the start of the run"),
            NotRunReason::Blocked { input } => write!(
                f,
                "blocked: input {input} has never been materialized and is not in the selection"
            ),
        }
    }
}

/// A considered asset left out of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotRun {
    /// The asset.
    pub key: AssetKey,
    /// Why.
    pub reason: NotRunReason,
}

/// What a `materialize` will do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Steps, upstream first.
    pub steps: Vec<PlannedStep>,
    /// Considered assets that will not run, upstream first.
    pub not_run: Vec<NotRun>,
    /// The step kind of every asset, by dense index (`None`: not planned).
    kinds: Vec<Option<StepKind>>,
}

/// Why a requested materialization cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// A requested key is not in the project.
    #[error("unknown asset {0}")]
    UnknownAsset(AssetKey),
    /// Sources are observed, not materialized.
    #[error("{0} is a source: sources are observed (freshet observe), not materialized")]
    Source(AssetKey),
    /// Only sources are observed.
    #[error("{0} is not a source: only sources are observed")]
    NotSource(AssetKey),
    /// A requested asset reads an input that has no data and is not requested too.
    #[error(
        "cannot materialize {asset}: its input {dependency} has never been materialized; \
         include {dependency} or run `freshet materialize` to build what is missing"
    )]
    MissingInput {
        /// The requested asset.
        asset: AssetKey,
        /// Its input without data.
        dependency: AssetKey,
    },
    /// The partitions asked for cannot be run as asked (the message says why).
    #[error("{0}")]
    Partitions(String),
}

/// Plans a `materialize`.
///
/// - Not `stale_only`: exactly the selected assets, upstream first. Each must have data for every
///   input not selected alongside it (else [`PlanError::MissingInput`]); selected sources are left
///   out (only sources selected: [`PlanError::Source`]).
/// - `stale_only`: the selected assets that are missing or stale, plus, as conditional steps, the
///   selected assets downstream of them. A stale asset reading an input that has no data and is
///   not planned is left out as blocked.
pub fn plan(
    graph: &AssetGraph,
    lineage: &Lineage,
    statuses: &Statuses,
    request: &PlanRequest,
) -> Result<Plan, PlanError> {
    let n = graph.len();
    let mut selected = vec![request.selection.is_none(); n];
    if let Some(keys) = &request.selection {
        for key in keys {
            let i = graph
                .index_of(key)
                .ok_or_else(|| PlanError::UnknownAsset(key.clone()))?;
            selected[i] = true;
        }
    }
    let is_source = |i: usize| graph.def(i).kind == AssetKind::Source;
    // A partitioned input's partitions are judged when its reader runs, each on its own.
    let has_data = |i: usize| {
        graph.def(i).partitions.is_some() || lineage.data_version(&graph.def(i).key).is_some()
    };

    // 0: not planned; otherwise the step kind.
    let mut kind: Vec<Option<StepKind>> = vec![None; n];
    let mut blocked: HashMap<usize, usize> = HashMap::new();
    if request.stale_only {
        // Upstream first, so a blocked asset's dependents see it is not planned.
        for &i in graph.order() {
            let forced = request.force.contains(&graph.def(i).key);
            if !selected[i] || is_source(i) || (statuses.at(i).status == Status::Fresh && !forced) {
                continue;
            }
            let missing_input = graph
                .upstream_of_index(i)
                .filter(|&d| !is_source(d) && kind[d].is_none() && !has_data(d))
                .min_by_key(|&d| &graph.def(d).key);
            match missing_input {
                Some(d) => {
                    blocked.insert(i, d);
                }
                None if forced => kind[i] = Some(StepKind::Requested),
                None => kind[i] = Some(StepKind::Needed),
            }
        }
        // Downstream of planned work, within the selection: conditional.
        for &i in graph.order() {
            if kind[i].is_none()
                && selected[i]
                && !is_source(i)
                && !blocked.contains_key(&i)
                && graph.upstream_of_index(i).any(|d| kind[d].is_some())
            {
                kind[i] = Some(StepKind::Conditional);
            }
        }
    } else {
        let mut any_asset = false;
        for i in 0..n {
            if selected[i] && !is_source(i) {
                kind[i] = Some(StepKind::Requested);
                any_asset = true;
            }
        }
        if !any_asset && let Some(i) = (0..n).find(|&i| selected[i]) {
            return Err(PlanError::Source(graph.def(i).key.clone()));
        }
        for &i in graph.order() {
            if kind[i].is_none() {
                continue;
            }
            if let Some(d) = graph
                .upstream_of_index(i)
                .filter(|&d| !is_source(d) && kind[d].is_none() && !has_data(d))
                .min_by_key(|&d| &graph.def(d).key)
            {
                return Err(PlanError::MissingInput {
                    asset: graph.def(i).key.clone(),
                    dependency: graph.def(d).key.clone(),
                });
            }
        }
    }

    let mut out = Plan::default();
    for &i in graph.order() {
        let key = &graph.def(i).key;
        match kind[i] {
            Some(step_kind) => out.steps.push(PlannedStep {
                key: key.clone(),
                kind: step_kind,
                partitions: None,
            }),
            None if selected[i] => out.not_run.push(NotRun {
                key: key.clone(),
                reason: if is_source(i) {
                    NotRunReason::Source
                } else if let Some(&d) = blocked.get(&i) {
                    NotRunReason::Blocked {
                        input: graph.def(d).key.clone(),
                    }
                } else {
                    NotRunReason::Fresh
                },
            }),
            None => {}
        }
    }
    out.kinds = kind;
    Ok(out)
}

impl Plan {
    /// Why `step` is in the plan, in words: its causes ("has a new code version", "input
    /// raw_orders has a new data version"), "missing", or "upstream stg_orders will change".
    /// `graph` and `statuses` must be the ones the plan was made from.
    pub fn reasons(
        &self,
        graph: &AssetGraph,
        statuses: &Statuses,
        step: &PlannedStep,
    ) -> Vec<String> {
        match graph.index_of(&step.key) {
            Some(i) => reasons(graph, statuses, &self.kinds, i, step.kind),
            None => Vec::new(),
        }
    }
}

fn reasons(
    graph: &AssetGraph,
    statuses: &Statuses,
    kind: &[Option<StepKind>],
    i: usize,
    step_kind: StepKind,
) -> Vec<String> {
    let status = statuses.at(i);
    let causes = || -> Vec<String> {
        if status.status == Status::Missing {
            vec!["missing".to_owned()]
        } else {
            status.causes.iter().map(|c| c.describe()).collect()
        }
    };
    match step_kind {
        StepKind::Needed => causes(),
        StepKind::Requested => {
            let mut out = vec!["requested".to_owned()];
            if status.status != Status::Fresh {
                out.extend(causes());
            }
            out
        }
        StepKind::Conditional => {
            let mut changing: Vec<&AssetKey> = graph
                .upstream_of_index(i)
                .filter(|&d| kind.get(d).is_some_and(Option::is_some))
                .map(|d| &graph.def(d).key)
                .collect();
            changing.sort();
            changing
                .into_iter()
                .map(|k| format!("upstream {k} will change"))
                .collect()
        }
    }
}

/// The expected cost of one step, from the asset's past materializations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepEstimate {
    /// The median duration of its latest materializations; `None` without history.
    pub duration: Option<Duration>,
    /// The size of the inputs it reads (their current Parquet objects, a source's files; for an
    /// input the plan rewrites first, the size of its latest version); `None` when an input has
    /// never had data.
    pub bytes_read: Option<u64>,
}

impl Plan {
    /// Estimates each step. `history` holds, per asset, the durations of its latest
    /// materializations (any order).
    pub fn estimate(
        &self,
        graph: &AssetGraph,
        lineage: &Lineage,
        history: &HashMap<AssetKey, Vec<Duration>>,
    ) -> Vec<StepEstimate> {
        self.steps
            .iter()
            .map(|step| {
                let duration = history.get(&step.key).and_then(|d| median(d));
                let bytes_read = graph.get(&step.key).and_then(|def| {
                    def.deps.iter().try_fold(0u64, |sum, dep| {
                        let size = lineage
                            .materialization(dep)
                            .map(|m| m.byte_size)
                            .or_else(|| lineage.observation(dep).map(|o| o.byte_size))?;
                        Some(sum.saturating_add(size))
                    })
                });
                StepEstimate {
                    duration,
                    bytes_read,
                }
            })
            .collect()
    }
}

fn median(durations: &[Duration]) -> Option<Duration> {
    let mut sorted = durations.to_vec();
    sorted.sort();
    sorted.get(sorted.len() / 2).copied()
}
