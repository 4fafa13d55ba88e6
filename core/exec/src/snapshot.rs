//! One snapshot of the facts: a project, the lineage the store recorded, every asset's status and
//! (on first use) every report, all judged at one moment.
//!
//! Built in one place, [`Snapshot::load`] (or [`Snapshot::new`] from a lineage already in hand),
//! and read by the command line, the server and anything else that shows or acts on statuses, so
//! they cannot disagree about what is fresh.
//!
//! **Invariant:** everything in a snapshot was judged against the same lineage at the same time,
//! [`Snapshot::at`]; it never changes after it is built (reports are computed once, lazily).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use chrono::{DateTime, Utc};

use crate::Result;
use crate::graph::AssetGraph;
use crate::model::{AssetKey, FreshnessState, Lineage, Status};
use crate::partitions::PartitionStatus;
use crate::planner::{self, AssetReport, Facts, Plan, PlanError, PlanRequest, Statuses};
use crate::project::Project;
use crate::selection::{Selection, SelectionError};
use crate::store::Store;

/// Every asset's status and report at one moment.
#[derive(Debug)]
pub struct Snapshot {
    project: Project,
    at: DateTime<Utc>,
    lineage: Lineage,
    /// Sources whose files were gone when it was built.
    gone: BTreeMap<AssetKey, Gone>,
    statuses: Statuses,
    reports: OnceLock<Reports>,
    /// Partitioned assets' partitions in brief.
    partitions: BTreeMap<AssetKey, PartitionSummary>,
    /// The statuses some partitions of each partitioned asset have, for `partitions:`.
    partition_statuses: std::collections::HashMap<AssetKey, Vec<PartitionStatus>>,
}

/// A partitioned asset's partitions in brief: its status is its worst partition's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionSummary {
    /// The definition it is partitioned by.
    pub by: String,
    /// Its worst partition's status (`None` while it has no partitions).
    pub worst: Option<PartitionStatus>,
    /// How many partitions have each status, worst first.
    pub counts: Vec<(PartitionStatus, u64)>,
    /// How many partitions exist.
    pub total: u64,
    /// `stale: 24 of 8,760`.
    pub summary: String,
}

impl PartitionSummary {
    /// The asset status it amounts to: stale while a partition is stale or failed, missing
    /// while one is missing, else fresh (partitions waiting for their inputs included).
    pub fn status(&self) -> Status {
        match self.worst {
            Some(PartitionStatus::Failed | PartitionStatus::Stale) => Status::Stale,
            Some(PartitionStatus::Missing) => Status::Missing,
            _ => Status::Fresh,
        }
    }
}

/// A source whose files are gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gone {
    /// What the listing found: `no files match /data/raw.csv`.
    pub reason: String,
    /// When its files were last seen (its latest observation's last check), if ever.
    pub last_observed_at: Option<DateTime<Utc>>,
}

impl Gone {
    /// The one-line summary shown for such a source.
    pub const SUMMARY: &'static str = "missing: its files are gone";

    /// The status and freshness to show for `report`'s asset, whose files are gone if `gone`
    /// says so: then `missing` and (with a policy) `unknown`, whatever its last observation
    /// says, as its data is not there to be fresh; else the judgement's.
    pub fn shown(gone: Option<&Gone>, report: &AssetReport) -> (Status, FreshnessState) {
        match (gone, report.freshness.state) {
            (None, state) => (report.status, state),
            (Some(_), FreshnessState::None) => (Status::Missing, FreshnessState::None),
            (Some(_), _) => (Status::Missing, FreshnessState::Unknown),
        }
    }
}

/// Reports in topological order, and where each graph index's report is.
#[derive(Debug)]
struct Reports {
    list: Vec<AssetReport>,
    position: Vec<Option<usize>>,
}

impl Snapshot {
    /// Reads the current lineage from `store` and judges every asset of `project` at `at`.
    pub async fn load(project: &Project, store: &Store, at: DateTime<Utc>) -> Result<Self> {
        let lineage = store.load_lineage().await?;
        let mut partitions = BTreeMap::new();
        let partitioned: Vec<&AssetKey> = project
            .graph()
            .iter()
            // A source's partitions are listed by `freshet partitions`; its status stays whole
            // (days whose files have not landed are not behind).
            .filter(|d| d.partitions.is_some() && d.kind != crate::model::AssetKind::Source)
            .map(|d| &d.key)
            .collect();
        if !partitioned.is_empty() {
            let states = store.partition_states().await?;
            for key in partitioned {
                let view =
                    crate::executor::partition_view(project, store, key, &lineage, &states, at)
                        .await?;
                if let Some(view) = view {
                    let statuses = &view.statuses;
                    partitions.insert(
                        key.clone(),
                        PartitionSummary {
                            by: view.partitions.name.to_owned(),
                            worst: statuses.worst(),
                            counts: PartitionStatus::ALL
                                .into_iter()
                                .map(|s| (s, statuses.count(s)))
                                .collect(),
                            total: statuses.valid.len(),
                            summary: statuses.summary(),
                        },
                    );
                }
            }
        }
        Ok(Self::new(project.clone(), lineage, at).with_partitions(partitions))
    }

    /// This snapshot with partitioned assets judged by their partitions.
    pub fn with_partitions(mut self, partitions: BTreeMap<AssetKey, PartitionSummary>) -> Self {
        let graph = self.project.graph();
        for (key, summary) in &partitions {
            if let Some(i) = graph.index_of(key) {
                self.statuses.set(
                    i,
                    planner::AssetStatus {
                        key: key.clone(),
                        status: summary.status(),
                        causes: Vec::new(),
                    },
                );
            }
        }
        self.partition_statuses = partitions
            .iter()
            .map(|(key, summary)| {
                let present = summary
                    .counts
                    .iter()
                    .filter(|(_, n)| *n > 0)
                    .map(|(s, _)| *s)
                    .collect();
                (key.clone(), present)
            })
            .collect();
        self.partitions = partitions;
        self.reports = OnceLock::new();
        self
    }

    /// A partitioned asset's partitions in brief.
    pub fn partitions(&self, key: &AssetKey) -> Option<&PartitionSummary> {
        self.partitions.get(key)
    }

    /// Every partitioned asset's partitions in brief.
    pub fn all_partitions(&self) -> &BTreeMap<AssetKey, PartitionSummary> {
        &self.partitions
    }

    /// [`Snapshot::load`], after looking whether each source's files are still there (a listing
    /// each, nothing read): [`Snapshot::gone`] says which are not, why, and when they were last
    /// seen. The judgement is unchanged (what was materialized from them still reflects them);
    /// what shows statuses shows such a source as gone rather than fresh.
    pub async fn load_looking(
        project: &Project,
        store: &Store,
        executor: &crate::executor::Executor,
        at: DateTime<Utc>,
    ) -> Result<Self> {
        let gone = executor.gone_sources().await;
        Ok(Self::load(project, store, at).await?.with_gone(gone))
    }

    /// This snapshot, saying that the sources in `gone` (each with what its listing found)
    /// have no files: what [`Snapshot::load_looking`] finds, or a look taken earlier.
    pub fn with_gone(mut self, gone: BTreeMap<AssetKey, String>) -> Self {
        self.gone = gone
            .into_iter()
            .filter(|(key, _)| self.project.graph().contains(key))
            .map(|(key, reason)| {
                let gone = Gone {
                    reason,
                    last_observed_at: self.lineage.observation(&key).map(|o| o.checked_at),
                };
                (key, gone)
            })
            .collect();
        self
    }

    /// Why `key`'s files are gone, if it is a source whose files were gone when this was built
    /// by [`Snapshot::load_looking`].
    pub fn gone(&self, key: &AssetKey) -> Option<&Gone> {
        self.gone.get(key)
    }

    /// Every source whose files were gone when this was built, by key.
    pub fn gone_sources(&self) -> &BTreeMap<AssetKey, Gone> {
        &self.gone
    }

    /// Judges every asset of `project` against `lineage` at `at` (for a plan, a lineage with
    /// sources observed but not recorded).
    pub fn new(project: Project, lineage: Lineage, at: DateTime<Utc>) -> Self {
        let statuses = Statuses::compute(project.graph(), &lineage);
        Self {
            project,
            at,
            lineage,
            gone: BTreeMap::new(),
            statuses,
            reports: OnceLock::new(),
            partitions: BTreeMap::new(),
            partition_statuses: std::collections::HashMap::new(),
        }
    }

    /// The project judged.
    pub fn project(&self) -> &Project {
        &self.project
    }

    /// The project's graph.
    pub fn graph(&self) -> &AssetGraph {
        self.project.graph()
    }

    /// When it was judged.
    pub fn at(&self) -> DateTime<Utc> {
        self.at
    }

    /// The lineage it was judged against.
    pub fn lineage(&self) -> &Lineage {
        &self.lineage
    }

    /// Every asset's status, indexed like the graph.
    pub fn statuses(&self) -> &Statuses {
        &self.statuses
    }

    /// Every asset's report, upstream first (each listing at most
    /// [`planner::UPSTREAM_LIMIT`] upstream issues).
    pub fn reports(&self) -> &[AssetReport] {
        &self.computed().list
    }

    /// The report on the asset at graph index `i`.
    pub fn report_at(&self, i: usize) -> Option<&AssetReport> {
        let reports = self.computed();
        reports
            .position
            .get(i)
            .copied()
            .flatten()
            .and_then(|p| reports.list.get(p))
    }

    /// The report on `key`, if it is an asset of the project.
    pub fn report(&self, key: &AssetKey) -> Option<&AssetReport> {
        self.report_at(self.graph().index_of(key)?)
    }

    /// One asset explained in full: its report with every upstream issue, not only the first
    /// [`planner::UPSTREAM_LIMIT`].
    pub fn explain(&self, key: &AssetKey) -> Option<AssetReport> {
        planner::report_one(self.graph(), &self.lineage, &self.statuses, key, self.at)
    }

    /// Status, freshness and partition statuses for `status:`, `freshness:` and `partitions:`
    /// in selections.
    pub fn facts(&self) -> Facts<'_> {
        Facts::from_reports(self.graph(), &self.statuses, self.reports())
            .with_partitions(&self.partition_statuses)
    }

    /// The assets `selection` picks, judged by this snapshot's facts when it needs them.
    pub fn select(&self, selection: &Selection) -> Result<BTreeSet<AssetKey>, SelectionError> {
        if selection.needs_facts() {
            selection.select(self.graph(), &self.facts())
        } else {
            selection.select_by_definition(self.graph())
        }
    }

    /// What `request` would run against this snapshot.
    pub fn plan(&self, request: &PlanRequest) -> Result<Plan, PlanError> {
        planner::plan(self.graph(), &self.lineage, &self.statuses, request)
    }

    /// When some asset's freshness next changes by time alone: until then the snapshot holds.
    pub fn valid_until(&self) -> Option<DateTime<Utc>> {
        self.reports()
            .iter()
            .filter_map(|r| r.freshness.next_change.map(|c| c.at))
            .min()
    }

    fn computed(&self) -> &Reports {
        self.reports.get_or_init(|| {
            let graph = self.project.graph();
            let list = planner::report_all(graph, &self.lineage, &self.statuses, self.at);
            let mut position = vec![None; graph.len()];
            for (p, r) in list.iter().enumerate() {
                if let Some(i) = graph.index_of(&r.key) {
                    position[i] = Some(p);
                }
            }
            Reports { list, position }
        })
    }
}
