//! Rule tests (one small script per staleness rule), plan tests and property tests on random
//! graphs and histories.

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;

use super::*;
use std::collections::HashMap;

use crate::model::{
    CodeVersion, DataVersion, InputVersion, MaterializationId, Observation, Origin, RunId,
};

/// A small world: definitions from `"key[@code]: deps"` lines (a `source` when the key starts with
/// `raw`), and a lineage changed by the same events a run records.
struct World {
    graph: AssetGraph,
    lineage: Lineage,
    clock: DateTime<Utc>,
}

fn key(s: &str) -> AssetKey {
    s.parse().unwrap()
}

fn defs(spec: &str) -> Vec<AssetDef> {
    spec.split(['\n', '|'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|line| {
            let (head, deps) = line.split_once(':').unwrap_or((line, ""));
            let (k, code) = head.trim().split_once('@').unwrap_or((head.trim(), "1"));
            let kind = if k.starts_with("raw") {
                AssetKind::Source
            } else {
                AssetKind::Sql
            };
            let mut def = AssetDef::new(key(k), kind, Origin::File { path: k.into() })
                .with_deps(deps.split_whitespace().map(key));
            if kind != AssetKind::Source {
                def.code_version = Some(CodeVersion::new(code));
            }
            def
        })
        .collect()
}

impl World {
    fn new(spec: &str) -> Self {
        Self {
            graph: AssetGraph::new(defs(spec)).unwrap(),
            lineage: Lineage::new(),
            clock: DateTime::parse_from_rfc3339("2026-11-22T08:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
        }
    }

    fn tick(&mut self) -> DateTime<Utc> {
        self.clock += Duration::minutes(1);
        self.clock
    }

    /// Records an observation when the version moved, as the executor does.
    fn observe(&mut self, k: &str, version: &str) {
        let at = self.tick();
        if self.lineage.data_version(&key(k)).map(DataVersion::as_str) == Some(version) {
            return;
        }
        self.lineage.set_observation(Observation {
            asset: key(k),
            data_version: DataVersion::new(version),
            file_count: 1,
            byte_size: 100,
            observed_at: at,
            checked_at: at,
        });
    }

    /// Materializes `k` with its current code and inputs, producing `output`.
    fn materialize(&mut self, k: &str, output: &str) {
        let at = self.tick();
        let def = self.graph.get(&key(k)).unwrap();
        let data_time = DataTimes::new(self.graph.len()).of_inputs(&self.graph, &self.lineage, def);
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
            asset: key(k),
            run_id: RunId::generate(),
            code_version: def.code_version.clone().unwrap(),
            data_version: DataVersion::new(output),
            inputs,
            location: String::new(),
            row_count: 0,
            byte_size: 1000,
            duration_us: 0,
            created_at: at,
            data_time: data_time.or(def.deps.is_empty().then_some(at)),
            details: Default::default(),
            collected_at: None,
        };
        self.lineage.set_materialization(m);
    }

    /// Replaces the definitions, keeping the lineage (a code edit).
    fn redefine(&mut self, spec: &str) {
        self.graph = AssetGraph::new(defs(spec)).unwrap();
    }

    /// Runs one script line.
    fn apply(&mut self, line: &str) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["observe", k, v] => self.observe(k, v),
            ["materialize", k, out] => self.materialize(k, out),
            // A failed step records nothing: the lineage is as it was.
            ["fail", _] => {}
            ["redefine", ..] => self.redefine(line.trim_start_matches("redefine")),
            _ => panic!("bad script line {line:?}"),
        }
    }

    /// `key: status [category dependency]... <upstream category>...` for every asset.
    fn render(&self) -> String {
        let statuses = Statuses::compute(&self.graph, &self.lineage);
        report_all(&self.graph, &self.lineage, &statuses, self.clock)
            .iter()
            .map(|r| {
                let mut line = format!("{}: {}", r.key, r.status.as_str());
                for c in &r.causes {
                    line.push_str(&format!(" [{}", c.category.as_str()));
                    if let Some(d) = &c.dependency {
                        line.push_str(&format!(" {d}"));
                    }
                    line.push(']');
                }
                for u in &r.upstream {
                    line.push_str(&format!(" <{} {}>", u.key, u.category.as_str()));
                }
                line
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn plan(&self, selection: Option<&[&str]>, stale_only: bool) -> String {
        let request = PlanRequest {
            selection: selection.map(|keys| keys.iter().map(|k| key(k)).collect()),
            stale_only,
            ..PlanRequest::default()
        };
        let statuses = Statuses::compute(&self.graph, &self.lineage);
        match plan(&self.graph, &self.lineage, &statuses, &request) {
            Ok(plan) => {
                let mut parts: Vec<String> = plan
                    .steps
                    .iter()
                    .map(|s| {
                        let reasons = plan.reasons(&self.graph, &statuses, s);
                        format!("{}({:?}: {})", s.key, s.kind, reasons.join("; "))
                    })
                    .collect();
                parts.extend(
                    plan.not_run
                        .iter()
                        .map(|n| format!("-{} ({})", n.key, n.reason)),
                );
                parts.join("\n")
            }
            Err(e) => e.to_string(),
        }
    }
}

/// Runs a rule script: events, and after each `expect` the statuses of every asset.
fn rule(spec: &str, script: &str) {
    let mut world = World::new(spec);
    let mut lines = script
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .peekable();
    while let Some(line) = lines.next() {
        if line != "expect" {
            world.apply(line);
            continue;
        }
        let mut expected = Vec::new();
        while let Some(l) =
            lines.next_if(|l| !l.starts_with("redefine") && (l.contains(": ") || l.ends_with(':')))
        {
            expected.push(l);
        }
        assert_eq!(
            world.render(),
            expected.join("\n"),
            "after the events above `expect`:\n{script}"
        );
    }
}

const CHAIN: &str = "raw_a:\nb: raw_a\nc: b";

const BUILT_CHAIN: &str = "
    observe raw_a v1
    materialize b b1
    materialize c c1
    expect
    raw_a: fresh
    b: fresh
    c: fresh";

#[test]
fn rule_never_materialized_is_missing_without_causes() {
    rule(
        CHAIN,
        "expect
         raw_a: missing
         b: missing <raw_a missing>
         c: missing <raw_a missing> <b missing>",
    );
}

#[test]
fn rule_code_change() {
    rule(
        CHAIN,
        &format!(
            "{BUILT_CHAIN}
             redefine raw_a: | b@2: raw_a | c: b
             expect
             raw_a: fresh
             b: stale [code]
             c: fresh <b code>"
        ),
    );
}

#[test]
fn rule_upstream_new_data_version() {
    rule(
        CHAIN,
        &format!(
            "{BUILT_CHAIN}
             observe raw_a v2
             expect
             raw_a: fresh
             b: stale [data raw_a]
             c: fresh <raw_a data>
             materialize b b2
             expect
             raw_a: fresh
             b: fresh
             c: stale [data b]"
        ),
    );
}

#[test]
fn rule_dependency_added() {
    rule(
        "raw_a:\nraw_x:\nb: raw_a\nc: b",
        "observe raw_a v1
         observe raw_x x1
         materialize b b1
         materialize c c1
         redefine raw_a: | raw_x: | b: raw_a raw_x | c: b
         expect
         raw_a: fresh
         raw_x: fresh
         b: stale [dependencies raw_x]
         c: fresh <b dependencies>",
    );
}

#[test]
fn rule_dependency_removed() {
    rule(
        "raw_a:\nraw_x:\nb: raw_a raw_x",
        "observe raw_a v1
         observe raw_x x1
         materialize b b1
         redefine raw_a: | raw_x: | b: raw_a
         expect
         raw_a: fresh
         b: stale [dependencies raw_x]
         raw_x: fresh",
    );
}

#[test]
fn rule_never_materialized_upstream() {
    // c was built when b had data; a new asset n between them has none yet.
    rule(
        CHAIN,
        &format!(
            "{BUILT_CHAIN}
             redefine raw_a: | b: raw_a | n: b | c: b n
             expect
             raw_a: fresh
             b: fresh
             n: missing
             c: stale [dependencies n] <n missing>"
        ),
    );
}

#[test]
fn rule_diamond() {
    rule(
        "raw_a:\nl: raw_a\nr: raw_a\nd: l r",
        "observe raw_a v1
         materialize l l1
         materialize r r1
         materialize d d1
         observe raw_a v2
         expect
         raw_a: fresh
         l: stale [data raw_a]
         r: stale [data raw_a]
         d: fresh <raw_a data>
         materialize l l2
         expect
         raw_a: fresh
         l: fresh
         r: stale [data raw_a]
         d: stale [data l] <raw_a data>
         materialize r r1
         expect
         raw_a: fresh
         l: fresh
         r: fresh
         d: stale [data l]",
    );
}

#[test]
fn rule_partial_materialization_of_a_chain() {
    rule(
        "raw_a:\nb: raw_a\nc: b\nd: c",
        "observe raw_a v1
         materialize b b1
         expect
         raw_a: fresh
         b: fresh
         c: missing
         d: missing <c missing>
         materialize c c1
         expect
         raw_a: fresh
         b: fresh
         c: fresh
         d: missing",
    );
}

#[test]
fn rule_failed_run_changes_nothing() {
    rule(
        CHAIN,
        &format!(
            "{BUILT_CHAIN}
             observe raw_a v2
             fail b
             expect
             raw_a: fresh
             b: stale [data raw_a]
             c: fresh <raw_a data>"
        ),
    );
}

#[test]
fn rule_source_observed_twice_with_the_same_version_changes_nothing() {
    rule(
        CHAIN,
        &format!(
            "{BUILT_CHAIN}
             observe raw_a v1
             observe raw_a v1
             expect
             raw_a: fresh
             b: fresh
             c: fresh"
        ),
    );
}

#[test]
fn rule_identical_rematerialization_keeps_downstream_fresh() {
    rule(
        CHAIN,
        &format!(
            "{BUILT_CHAIN}
             observe raw_a v2
             materialize b b1
             expect
             raw_a: fresh
             b: fresh
             c: fresh"
        ),
    );
}

#[test]
fn causes_come_in_a_stable_order_with_stable_wording() {
    let mut w = World::new("raw_a:\nraw_x:\nraw_y:\nb: raw_a raw_y");
    w.observe("raw_a", "v1");
    w.observe("raw_x", "x1");
    w.observe("raw_y", "y1");
    w.materialize("b", "b1");
    w.observe("raw_y", "y2");
    w.redefine("raw_a:\nraw_x:\nraw_y:\nb@2: raw_x raw_y");
    let statuses = Statuses::compute(&w.graph, &w.lineage);
    let b = statuses.get(&w.graph, &key("b")).unwrap();
    let got: Vec<String> = b
        .causes
        .iter()
        .map(|c| format!("{} | {}", c.category.as_str(), c.reason))
        .collect();
    assert_eq!(
        got,
        [
            "code | has a new code version",
            "data | has a new dependency data version",
            "dependencies | removed dependency on raw_a",
            "dependencies | has a new dependency on raw_x",
        ]
    );
}

#[test]
fn summary_says_what_upstream_is_behind() {
    let mut w = World::new(CHAIN);
    w.observe("raw_a", "v1");
    w.materialize("b", "b1");
    w.materialize("c", "c1");
    w.observe("raw_a", "v2");
    let statuses = Statuses::compute(&w.graph, &w.lineage);
    let reports = report_all(&w.graph, &w.lineage, &statuses, w.clock);
    let summaries: Vec<String> = reports.iter().map(AssetReport::summary).collect();
    assert_eq!(
        summaries,
        [
            "fresh",
            "stale: input raw_a has a new data version",
            "fresh, but upstream raw_a has newer data not yet propagated",
        ]
    );
}

#[test]
fn upstream_lists_are_bounded_and_report_one_lists_all() {
    // 12 missing sources feeding one asset: the list stops at the limit.
    let sources: Vec<String> = (0..12).map(|i| format!("raw_{i:02}")).collect();
    let spec = format!(
        "{}\nb: {}\nc: b",
        sources
            .iter()
            .map(|s| format!("{s}:"))
            .collect::<Vec<_>>()
            .join("\n"),
        sources.join(" ")
    );
    let w = World::new(&spec);
    let statuses = Statuses::compute(&w.graph, &w.lineage);
    let reports = report_all(&w.graph, &w.lineage, &statuses, w.clock);
    let c = reports.iter().find(|r| r.key == key("c")).unwrap();
    assert_eq!(c.upstream.len(), UPSTREAM_LIMIT);
    assert!(c.upstream_truncated);
    let full = report_one(&w.graph, &w.lineage, &statuses, &key("c"), w.clock).unwrap();
    assert_eq!(full.upstream.len(), 13);
    assert!(!full.upstream_truncated);
    assert_eq!(full.upstream[..UPSTREAM_LIMIT], c.upstream[..]);
}

#[test]
fn data_time_follows_sources_while_inputs_are_current() {
    let mut w = World::new(CHAIN);
    w.observe("raw_a", "v1"); // 08:01
    w.materialize("b", "b1"); // 08:02, reflects raw_a as of 08:01
    w.materialize("c", "c1"); // 08:03, reflects raw_a as of 08:01 too
    let times = |w: &World| {
        let mut dt = DataTimes::new(w.graph.len());
        ["raw_a", "b", "c"].map(|k| {
            dt.get(&w.graph, &w.lineage, w.graph.index_of(&key(k)).unwrap())
                .map(|t| t.format("%H:%M").to_string())
        })
    };
    assert_eq!(
        times(&w),
        [
            Some("08:01".into()),
            Some("08:01".into()),
            Some("08:01".into())
        ]
    );
    // The source is checked again at 09:00 and found unchanged: everything reflects 09:00.
    let checked = w.clock + Duration::minutes(57);
    let mut o = w.lineage.observation(&key("raw_a")).unwrap().clone();
    o.checked_at = checked;
    w.lineage.set_observation(o);
    assert_eq!(
        times(&w),
        [
            Some("09:00".into()),
            Some("09:00".into()),
            Some("09:00".into())
        ]
    );
    // New source data: b no longer reflects the current source, so it keeps what it recorded,
    // and so does c, which reads b.
    w.clock = checked;
    w.observe("raw_a", "v2");
    assert_eq!(
        times(&w),
        [
            Some("09:01".into()),
            Some("08:01".into()),
            Some("08:01".into())
        ]
    );
}

#[test]
fn plans_missing_and_stale_then_downstream_conditionally() {
    let mut w = World::new("raw_a:\nb: raw_a\nc: b\nd: raw_a");
    assert_eq!(
        w.plan(None, true),
        "b(Needed: missing)\nc(Needed: missing)\nd(Needed: missing)\n-raw_a (source: observed at the start of the run)"
    );
    w.observe("raw_a", "v1");
    w.materialize("b", "b1");
    w.materialize("c", "c1");
    w.materialize("d", "d1");
    assert_eq!(
        w.plan(None, true),
        "-raw_a (source: observed at the start of the run)\n-b (fresh)\n-c (fresh)\n-d (fresh)"
    );
    w.redefine("raw_a:\nb@2: raw_a\nc: b\nd: raw_a");
    assert_eq!(
        w.plan(None, true),
        "b(Needed: has a new code version)\nc(Conditional: upstream b will change)\n\
         -raw_a (source: observed at the start of the run)\n-d (fresh)"
    );
    // Within a selection: only what is selected, and conditional only within it.
    assert_eq!(
        w.plan(Some(&["b", "d"]), true),
        "b(Needed: has a new code version)\n-d (fresh)"
    );
}

#[test]
fn plans_leave_out_blocked_assets_and_say_why() {
    let w = World::new("raw_a:\nb: raw_a\nc: b");
    assert_eq!(
        w.plan(Some(&["c"]), true),
        "-c (blocked: input b has never been materialized and is not in the selection)"
    );
}

#[test]
fn plans_exactly_the_requested_assets() {
    let mut w = World::new("raw_a:\nb: raw_a\nc: b");
    assert_eq!(
        w.plan(Some(&["c", "b"]), false),
        "b(Requested: requested; missing)\nc(Requested: requested; missing)"
    );
    assert_eq!(
        w.plan(Some(&["c"]), false),
        "cannot materialize c: its input b has never been materialized; \
         include b or run `freshet materialize` to build what is missing"
    );
    assert_eq!(
        w.plan(Some(&["raw_a"]), false),
        "raw_a is a source: sources are observed (freshet observe), not materialized"
    );
    assert_eq!(w.plan(Some(&["zzz"]), false), "unknown asset zzz");
    w.observe("raw_a", "v1");
    w.materialize("b", "b1");
    assert_eq!(
        w.plan(Some(&["c", "raw_a"]), false),
        "c(Requested: requested; missing)\n-raw_a (source: observed at the start of the run)"
    );
}

#[test]
fn estimates_come_from_history_and_input_sizes() {
    let mut w = World::new("raw_a:\nb: raw_a\nc: b");
    w.observe("raw_a", "v1");
    w.materialize("b", "b1");
    w.redefine("raw_a:\nb@2: raw_a\nc: b");
    let statuses = Statuses::compute(&w.graph, &w.lineage);
    let plan = plan(&w.graph, &w.lineage, &statuses, &PlanRequest::stale()).unwrap();
    let history = HashMap::from([(
        key("b"),
        vec![
            std::time::Duration::from_millis(30),
            std::time::Duration::from_millis(10),
            std::time::Duration::from_millis(20),
        ],
    )]);
    let estimates = plan.estimate(&w.graph, &w.lineage, &history);
    assert_eq!(
        estimates,
        [
            StepEstimate {
                duration: Some(std::time::Duration::from_millis(20)),
                bytes_read: Some(100)
            },
            StepEstimate {
                duration: None,
                bytes_read: Some(1000)
            },
        ]
    );
}

#[test]
fn refresh_after_a_code_change_matches_a_full_recompute() {
    let mut w = World::new("raw_a:\nb: raw_a\nc: b\nd: c b");
    w.observe("raw_a", "v1");
    for k in ["b", "c", "d"] {
        w.materialize(k, &format!("{k}1"));
    }
    let mut statuses = Statuses::compute(&w.graph, &w.lineage);
    let mut def = w.graph.get(&key("c")).unwrap().clone();
    def.code_version = Some(CodeVersion::new("2"));
    w.graph.replace(def).unwrap();
    statuses.refresh(&w.graph, &w.lineage, &key("c"));
    let full = Statuses::compute(&w.graph, &w.lineage);
    assert_eq!(statuses.by_index, full.by_index);
    assert_eq!(
        statuses.get(&w.graph, &key("c")).unwrap().status,
        Status::Stale
    );
}

// Property tests: random layered graphs and random histories.

/// A random graph: `sources` sources, then assets each reading 1..=3 earlier nodes.
fn random_spec(sources: usize, deps: &[Vec<usize>]) -> String {
    let name = |i: usize| {
        if i < sources {
            format!("raw_{i}")
        } else {
            format!("a{i}")
        }
    };
    let mut lines: Vec<String> = (0..sources).map(|i| format!("{}:", name(i))).collect();
    for (j, d) in deps.iter().enumerate() {
        let i = sources + j;
        let mut ds: Vec<String> = d.iter().map(|&x| name(x % i)).collect();
        ds.sort();
        ds.dedup();
        lines.push(format!("{}: {}", name(i), ds.join(" ")));
    }
    lines.join("\n")
}

#[derive(Debug, Clone)]
enum Event {
    Observe(usize, u8),
    Materialize(usize, u8),
    CodeChange(usize),
}

fn world_strategy() -> impl Strategy<Value = (usize, Vec<Vec<usize>>, Vec<Event>)> {
    (1usize..4, 1usize..10).prop_flat_map(|(sources, assets)| {
        let deps = prop::collection::vec(prop::collection::vec(0usize..64, 1..=3), assets);
        let n = sources + assets;
        let event = prop_oneof![
            (0..sources, 0u8..3).prop_map(|(i, v)| Event::Observe(i, v)),
            (sources..n, 0u8..3).prop_map(|(i, v)| Event::Materialize(i, v)),
            (sources..n).prop_map(Event::CodeChange),
        ];
        (Just(sources), deps, prop::collection::vec(event, 0..30))
    })
}

impl World {
    fn name(&self, i: usize) -> String {
        if self.graph.contains(&key(&format!("raw_{i}"))) {
            format!("raw_{i}")
        } else {
            format!("a{i}")
        }
    }

    fn can_materialize(&self, k: &str) -> bool {
        self.graph
            .get(&key(k))
            .unwrap()
            .deps
            .iter()
            .all(|d| self.lineage.data_version(d).is_some())
    }

    fn code_change(&mut self, k: &str) {
        let mut def = self.graph.get(&key(k)).unwrap().clone();
        let next = format!("{}x", def.code_version.as_ref().unwrap());
        def.code_version = Some(CodeVersion::new(next));
        self.graph.replace(def).unwrap();
    }

    fn play(&mut self, events: &[Event]) {
        for e in events {
            match *e {
                Event::Observe(i, v) => self.observe(&self.name(i), &format!("v{v}")),
                Event::Materialize(i, v) => {
                    let k = self.name(i);
                    if self.can_materialize(&k) {
                        self.materialize(&k, &format!("{k}-{v}"));
                    }
                }
                Event::CodeChange(i) => self.code_change(&self.name(i)),
            }
        }
    }

    fn statuses(&self) -> Vec<(AssetKey, Status, Vec<StaleCause>)> {
        Statuses::compute(&self.graph, &self.lineage)
            .iter(&self.graph)
            .map(|s| (s.key.clone(), s.status, s.causes.clone()))
            .collect()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn materializing_everything_in_order_leaves_all_fresh((sources, deps, events) in world_strategy()) {
        let mut w = World::new(&random_spec(sources, &deps));
        w.play(&events);
        for i in 0..sources {
            if w.lineage.observation(&key(&format!("raw_{i}"))).is_none() {
                w.observe(&format!("raw_{i}"), "v0");
            }
        }
        let order: Vec<String> = w.graph.iter().filter(|d| d.kind != AssetKind::Source).map(|d| d.key.to_string()).collect();
        for k in order {
            w.materialize(&k, "out");
        }
        for (k, status, causes) in w.statuses() {
            prop_assert_eq!(status, Status::Fresh, "{} {:?}", k, causes);
        }
    }

    #[test]
    fn fresh_exactly_when_code_and_inputs_are_what_was_recorded((sources, deps, events) in world_strategy()) {
        let mut w = World::new(&random_spec(sources, &deps));
        w.play(&events);
        let statuses = Statuses::compute(&w.graph, &w.lineage);
        for def in w.graph.iter().filter(|d| d.kind != AssetKind::Source) {
            let Some(m) = w.lineage.materialization(&def.key) else { continue };
            let consumed: std::collections::BTreeMap<&AssetKey, &DataVersion> =
                m.inputs.iter().map(|i| (&i.asset, &i.data_version)).collect();
            let unchanged = def.code_version.as_ref() == Some(&m.code_version)
                && consumed.keys().copied().eq(def.deps.iter())
                && def.deps.iter().all(|d| w.lineage.data_version(d) == consumed.get(d).copied());
            let status = statuses.get(&w.graph, &def.key).unwrap();
            prop_assert_eq!(status.status == Status::Fresh, unchanged, "{:?}", status);
            // Every data cause names an input whose version really moved.
            for c in status.causes.iter().filter(|c| c.category == CauseCategory::Data) {
                let dep = c.dependency.as_ref().unwrap();
                prop_assert_ne!(w.lineage.data_version(dep), consumed.get(dep).copied());
            }
        }
    }

    #[test]
    fn unchanged_output_leaves_dependents_unchanged((sources, deps, events) in world_strategy()) {
        let mut w = World::new(&random_spec(sources, &deps));
        w.play(&events);
        let statuses = Statuses::compute(&w.graph, &w.lineage);
        let stale: Vec<AssetKey> = statuses.iter(&w.graph).filter(|s| s.status == Status::Stale).map(|s| s.key.clone()).collect();
        for k in stale {
            if !w.can_materialize(k.as_str()) {
                continue;
            }
            let before = w.statuses();
            let same = w.lineage.data_version(&k).unwrap().to_string();
            w.materialize(k.as_str(), &same);
            let after = w.statuses();
            for (b, a) in before.iter().zip(&after) {
                if b.0 == k {
                    prop_assert_eq!(a.1, Status::Fresh);
                } else {
                    prop_assert_eq!(b, a);
                }
            }
        }
    }

    #[test]
    fn statuses_are_consistent_and_refresh_matches_recompute((sources, deps, events) in world_strategy()) {
        let mut w = World::new(&random_spec(sources, &deps));
        let mut statuses = Statuses::compute(&w.graph, &w.lineage);
        for e in &events {
            w.play(std::slice::from_ref(e));
            let k = match *e {
                Event::Observe(i, _) | Event::Materialize(i, _) | Event::CodeChange(i) => key(&w.name(i)),
            };
            statuses.refresh(&w.graph, &w.lineage, &k);
            let full = Statuses::compute(&w.graph, &w.lineage);
            prop_assert_eq!(&statuses.by_index, &full.by_index);
        }
        for s in statuses.iter(&w.graph) {
            let def = w.graph.get(&s.key).unwrap();
            let recorded = if def.kind == AssetKind::Source {
                w.lineage.observation(&s.key).is_some()
            } else {
                w.lineage.materialization(&s.key).is_some()
            };
            prop_assert_eq!(s.status == Status::Missing, !recorded);
            prop_assert_eq!(s.status == Status::Stale, !s.causes.is_empty());
        }
        // Bounded upstream lists agree with the full ones where not cut.
        let reports = report_all(&w.graph, &w.lineage, &statuses, w.clock);
        for r in &reports {
            let one = report_one(&w.graph, &w.lineage, &statuses, &r.key, w.clock).unwrap();
            if !r.upstream_truncated {
                prop_assert_eq!(&r.upstream, &one.upstream);
            }
            prop_assert_eq!(r.status, one.status);
        }
    }

    #[test]
    fn running_a_stale_plan_leaves_everything_fresh((sources, deps, events, outputs) in world_strategy().prop_flat_map(|w| (Just(w.0), Just(w.1), Just(w.2), prop::collection::vec(0u8..2, 16)))) {
        let mut w = World::new(&random_spec(sources, &deps));
        w.play(&events);
        for i in 0..sources {
            w.observe(&format!("raw_{i}"), "v9");
        }
        let statuses = Statuses::compute(&w.graph, &w.lineage);
        let planned = plan(&w.graph, &w.lineage, &statuses, &PlanRequest::stale()).unwrap();
        let mut last = 0usize;
        for (n, step) in planned.steps.iter().enumerate() {
            // Upstream first.
            let pos = w.graph.order().iter().position(|&i| w.graph.def(i).key == step.key).unwrap();
            prop_assert!(n == 0 || pos > last);
            last = pos;
            // As the executor does: a conditional step runs only if its inputs changed.
            let now = Statuses::compute(&w.graph, &w.lineage);
            if step.kind == StepKind::Conditional && now.get(&w.graph, &step.key).unwrap().status == Status::Fresh {
                continue;
            }
            let keep = outputs[n % outputs.len()] == 0 && w.lineage.data_version(&step.key).is_some();
            let out = if keep { w.lineage.data_version(&step.key).unwrap().to_string() } else { format!("{}-new", step.key) };
            w.materialize(step.key.as_str(), &out);
        }
        for (k, status, causes) in w.statuses() {
            prop_assert_eq!(status, Status::Fresh, "{} {:?}", k, causes);
        }
    }
}
