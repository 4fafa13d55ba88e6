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

use std::collections::{BTreeSet, HashMap};

use crate::graph::AssetGraph;
use crate::model::{AssetDef, AssetKey, AssetKind, DataVersion, Materialization, Observation};

/// The latest recorded event of every asset: what the planner judges against.
#[derive(Debug, Clone, Default)]
pub struct Lineage {
    materializations: HashMap<AssetKey, Materialization>,
    observations: HashMap<AssetKey, Observation>,
}

impl Lineage {
    /// An empty lineage: nothing materialized or observed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `m` as its asset's latest materialization.
    pub fn set_materialization(&mut self, m: Materialization) {
        self.materializations.insert(m.asset.clone(), m);
    }

    /// Records `o` as its source's latest observation.
    pub fn set_observation(&mut self, o: Observation) {
        self.observations.insert(o.asset.clone(), o);
    }

    /// The latest materialization of `key`.
    pub fn materialization(&self, key: &AssetKey) -> Option<&Materialization> {
        self.materializations.get(key)
    }

    /// The latest observation of `key`.
    pub fn observation(&self, key: &AssetKey) -> Option<&Observation> {
        self.observations.get(key)
    }

    /// The current data version of `key`: its latest materialization's, or for a source its latest
    /// observation's.
    pub fn data_version(&self, key: &AssetKey) -> Option<&DataVersion> {
        self.materializations
            .get(key)
            .map(|m| &m.data_version)
            .or_else(|| self.observations.get(key).map(|o| &o.data_version))
    }
}

/// An asset's staleness status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
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

/// The category of a stale cause. Ordered as causes are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
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
    let consumed: HashMap<&AssetKey, &DataVersion> = m
        .inputs
        .iter()
        .map(|i| (&i.asset, &i.data_version))
        .collect();
    for dep in &def.deps {
        match consumed.get(dep) {
            None => causes.push(StaleCause {
                category: CauseCategory::Dependencies,
                reason: format!("has a new dependency on {dep}"),
                dependency: Some(dep.clone()),
            }),
            Some(&version) if lineage.data_version(dep) != Some(version) => {
                causes.push(StaleCause {
                    category: CauseCategory::Data,
                    reason: "has a new dependency data version".to_owned(),
                    dependency: Some(dep.clone()),
                })
            }
            Some(_) => {}
        }
    }
    let current: BTreeSet<&AssetKey> = def.deps.iter().collect();
    for input in &m.inputs {
        if !current.contains(&input.asset) {
            causes.push(StaleCause {
                category: CauseCategory::Dependencies,
                reason: format!("removed dependency on {}", input.asset),
                dependency: Some(input.asset.clone()),
            });
        }
    }
    causes.sort_by(|a, b| (a.category, &a.dependency).cmp(&(b.category, &b.dependency)));
    causes
}

/// Statuses of every asset, upstream first.
pub fn statuses(graph: &AssetGraph, lineage: &Lineage) -> Vec<AssetStatus> {
    graph.iter().map(|def| status_of(def, lineage)).collect()
}

/// What a `materialize` will do with one asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// Named by the user: runs whatever its status.
    Requested,
    /// Missing or stale now: runs.
    Needed,
    /// Downstream of a needed step: runs only if, when its turn comes, its inputs turned out to
    /// change (the executor re-judges it then).
    Conditional,
}

/// One step of a materialize plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedStep {
    /// The asset to materialize.
    pub key: AssetKey,
    /// Why it is in the plan.
    pub kind: StepKind,
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
}

/// Plans a `materialize`.
///
/// With `requested` empty: every missing or stale asset, plus everything downstream of one as a
/// conditional step. Otherwise exactly the requested assets, which must each have data for every
/// input not requested alongside it. Steps come upstream first.
pub fn plan_materialize(
    graph: &AssetGraph,
    lineage: &Lineage,
    requested: &[AssetKey],
) -> Result<Vec<PlannedStep>, PlanError> {
    let mut steps = Vec::new();
    if requested.is_empty() {
        let needed: BTreeSet<AssetKey> = graph
            .iter()
            .filter(|d| d.kind != AssetKind::Source)
            .filter(|d| status_of(d, lineage).status != Status::Fresh)
            .map(|d| d.key.clone())
            .collect();
        let downstream = graph.downstream_of(&needed);
        for def in graph.iter() {
            let kind = if needed.contains(&def.key) {
                StepKind::Needed
            } else if downstream.contains(&def.key) {
                StepKind::Conditional
            } else {
                continue;
            };
            steps.push(PlannedStep {
                key: def.key.clone(),
                kind,
            });
        }
        return Ok(steps);
    }

    let chosen: BTreeSet<&AssetKey> = requested.iter().collect();
    for key in &chosen {
        let def = graph
            .get(key)
            .ok_or_else(|| PlanError::UnknownAsset((*key).clone()))?;
        if def.kind == AssetKind::Source {
            return Err(PlanError::Source((*key).clone()));
        }
        for dep in &def.deps {
            let is_source = graph.get(dep).is_some_and(|d| d.kind == AssetKind::Source);
            if !is_source && !chosen.contains(dep) && lineage.data_version(dep).is_none() {
                return Err(PlanError::MissingInput {
                    asset: (*key).clone(),
                    dependency: dep.clone(),
                });
            }
        }
    }
    let mut keys: Vec<AssetKey> = chosen.into_iter().cloned().collect();
    graph.sort_topologically(&mut keys);
    steps.extend(keys.into_iter().map(|key| PlannedStep {
        key,
        kind: StepKind::Requested,
    }));
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::model::{CodeVersion, InputVersion, MaterializationId, Origin, RunId};

    /// A small world: definitions from `"key[@code]: deps"` lines (`source` kind when the key
    /// starts with `raw`), and a lineage built by helper calls.
    struct World {
        graph: AssetGraph,
        lineage: Lineage,
    }

    impl World {
        fn new(spec: &str) -> Self {
            let defs = spec
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(|line| {
                    let (head, deps) = line.split_once(':').unwrap_or((line, ""));
                    let (key, code) = head.trim().split_once('@').unwrap_or((head.trim(), "1"));
                    let kind = if key.starts_with("raw") {
                        AssetKind::Source
                    } else {
                        AssetKind::Sql
                    };
                    let mut def = AssetDef::new(
                        key.parse().unwrap(),
                        kind,
                        Origin::File { path: key.into() },
                    )
                    .with_deps(deps.split_whitespace().map(|d| d.parse().unwrap()));
                    if kind != AssetKind::Source {
                        def.code_version = Some(CodeVersion::new(code));
                    }
                    def
                })
                .collect();
            Self {
                graph: AssetGraph::new(defs).unwrap(),
                lineage: Lineage::new(),
            }
        }

        fn key(s: &str) -> AssetKey {
            s.parse().unwrap()
        }

        fn observe(&mut self, key: &str, version: &str) {
            self.lineage.set_observation(Observation {
                asset: Self::key(key),
                data_version: DataVersion::new(version),
                file_count: 1,
                byte_size: 1,
                observed_at: Utc::now(),
            });
        }

        /// Materializes `key` with its current code and inputs, producing `output`.
        fn materialize(&mut self, key: &str, output: &str) {
            let def = self.graph.get(&Self::key(key)).unwrap();
            let inputs = def
                .deps
                .iter()
                .map(|d| InputVersion {
                    asset: d.clone(),
                    data_version: self.lineage.data_version(d).cloned().unwrap(),
                })
                .collect();
            let m = Materialization {
                id: MaterializationId::generate(),
                asset: Self::key(key),
                run_id: RunId::generate(),
                code_version: def.code_version.clone().unwrap(),
                data_version: DataVersion::new(output),
                inputs,
                location: String::new(),
                row_count: 0,
                byte_size: 0,
                duration_us: 0,
                created_at: Utc::now(),
            };
            self.lineage.set_materialization(m);
        }

        /// Replaces the definitions, keeping the lineage (a code edit).
        fn redefine(&mut self, spec: &str) {
            let lineage = std::mem::take(&mut self.lineage);
            *self = Self::new(spec);
            self.lineage = lineage;
        }

        /// `key: status [category dependency]...` for every asset.
        fn render(&self) -> String {
            statuses(&self.graph, &self.lineage)
                .iter()
                .map(|s| {
                    let mut line = format!("{}: {}", s.key, s.status.as_str());
                    for c in &s.causes {
                        line.push_str(&format!(" [{}", c.category.as_str()));
                        if let Some(d) = &c.dependency {
                            line.push_str(&format!(" {d}"));
                        }
                        line.push(']');
                    }
                    line
                })
                .collect::<Vec<_>>()
                .join("\n")
        }

        fn plan(&self, requested: &[&str]) -> String {
            let requested: Vec<AssetKey> = requested.iter().map(|k| Self::key(k)).collect();
            match plan_materialize(&self.graph, &self.lineage, &requested) {
                Ok(steps) => steps
                    .iter()
                    .map(|s| format!("{}({:?})", s.key, s.kind))
                    .collect::<Vec<_>>()
                    .join(" "),
                Err(e) => e.to_string(),
            }
        }
    }

    fn check(world: &World, expect: &str) {
        let expect = expect
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(world.render(), expect);
    }

    const CHAIN: &str = "raw_a:\nb: raw_a\nc: b";

    #[test]
    fn never_materialized_is_missing_without_causes() {
        let w = World::new(CHAIN);
        check(&w, "raw_a: missing\nb: missing\nc: missing");
    }

    #[test]
    fn all_materialized_in_order_is_fresh() {
        let mut w = World::new(CHAIN);
        w.observe("raw_a", "v1");
        w.materialize("b", "b1");
        w.materialize("c", "c1");
        check(&w, "raw_a: fresh\nb: fresh\nc: fresh");
    }

    #[test]
    fn new_source_data_makes_direct_dependents_stale_only() {
        let mut w = World::new(CHAIN);
        w.observe("raw_a", "v1");
        w.materialize("b", "b1");
        w.materialize("c", "c1");
        w.observe("raw_a", "v1");
        check(&w, "raw_a: fresh\nb: fresh\nc: fresh");
        w.observe("raw_a", "v2");
        check(&w, "raw_a: fresh\nb: stale [data raw_a]\nc: fresh");
        // Re-materializing b with different output makes c stale; with identical output it would not.
        w.materialize("b", "b2");
        check(&w, "raw_a: fresh\nb: fresh\nc: stale [data b]");
    }

    #[test]
    fn identical_rematerialization_keeps_downstream_fresh() {
        let mut w = World::new(CHAIN);
        w.observe("raw_a", "v1");
        w.materialize("b", "b1");
        w.materialize("c", "c1");
        w.observe("raw_a", "v2");
        w.materialize("b", "b1");
        check(&w, "raw_a: fresh\nb: fresh\nc: fresh");
    }

    #[test]
    fn code_change_is_a_code_cause() {
        let mut w = World::new(CHAIN);
        w.observe("raw_a", "v1");
        w.materialize("b", "b1");
        w.materialize("c", "c1");
        w.redefine("raw_a:\nb@2: raw_a\nc: b");
        check(&w, "raw_a: fresh\nb: stale [code]\nc: fresh");
    }

    #[test]
    fn added_and_removed_dependencies() {
        let mut w = World::new("raw_a:\nraw_x:\nb: raw_a");
        w.observe("raw_a", "v1");
        w.observe("raw_x", "x1");
        w.materialize("b", "b1");
        w.redefine("raw_a:\nraw_x:\nb@2: raw_x");
        check(
            &w,
            "raw_a: fresh\nraw_x: fresh\nb: stale [code] [dependencies raw_a] [dependencies raw_x]",
        );
    }

    #[test]
    fn diamond_reports_each_changed_input() {
        let mut w = World::new("raw_a:\nl: raw_a\nr: raw_a\nd: l r");
        w.observe("raw_a", "v1");
        for (k, v) in [("l", "l1"), ("r", "r1"), ("d", "d1")] {
            w.materialize(k, v);
        }
        w.observe("raw_a", "v2");
        w.materialize("l", "l2");
        w.materialize("r", "r2");
        check(
            &w,
            "raw_a: fresh\nl: fresh\nr: fresh\nd: stale [data l] [data r]",
        );
    }

    #[test]
    fn plans_missing_and_stale_then_downstream_conditionally() {
        let mut w = World::new("raw_a:\nb: raw_a\nc: b\nd: raw_a");
        assert_eq!(w.plan(&[]), "b(Needed) c(Needed) d(Needed)");
        w.observe("raw_a", "v1");
        w.materialize("b", "b1");
        w.materialize("c", "c1");
        w.materialize("d", "d1");
        assert_eq!(w.plan(&[]), "");
        w.redefine("raw_a:\nb@2: raw_a\nc: b\nd: raw_a");
        assert_eq!(w.plan(&[]), "b(Needed) c(Conditional)");
    }

    #[test]
    fn plans_exactly_the_requested_assets() {
        let mut w = World::new("raw_a:\nb: raw_a\nc: b");
        assert_eq!(w.plan(&["c", "b"]), "b(Requested) c(Requested)");
        assert_eq!(
            w.plan(&["c"]),
            "cannot materialize c: its input b has never been materialized; \
             include b or run `freshet materialize` to build what is missing"
        );
        assert_eq!(
            w.plan(&["raw_a"]),
            "raw_a is a source: sources are observed (freshet observe), not materialized"
        );
        assert_eq!(w.plan(&["zzz"]), "unknown asset zzz");
        w.observe("raw_a", "v1");
        w.materialize("b", "b1");
        assert_eq!(w.plan(&["c"]), "c(Requested)");
    }
}
