//! Planner benchmark: a synthetic layered project with one materialization per asset in a SQLite
//! store. Prints figures; asserts nothing.
//!
//! ```sh
//! cargo bench -p freshet-plan --bench planner --profile perf -- 100000 10000
//! ```
//!
//! Measures, per size: building the graph; reading the store; judging every asset (status with
//! causes, upstream, freshness and data time); planning from scratch; re-planning after one code
//! change with the graph and statuses in memory; a selection; and the process's peak memory.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use chrono::Utc;
use freshet_plan::freshness::Clock as _;
use freshet_plan::freshness::SystemClock;
use freshet_plan::model::{
    CodeVersion, DataVersion, FreshnessPolicy, InputVersion, Materialization, MaterializationId,
    Observation, Origin, RunId,
};
use freshet_plan::planner::{self, Facts, PlanRequest, Statuses};
use freshet_plan::selection::Selection;
use freshet_plan::{AssetDef, AssetGraph, AssetKey, AssetKind, Status};
use freshet_store::{NewRun, RunKind, RunStatus, Store};

/// A small deterministic generator (xorshift64*), so every run builds the same project.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// `n` assets in layers of 1,000: the first layer sources, each later asset reading 1 to 3 assets
/// of the two layers above it. One in ten has a max-age policy, one in twenty a cron deadline.
fn synthetic(n: usize) -> Vec<AssetDef> {
    const WIDTH: usize = 1000;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut defs: Vec<AssetDef> = Vec::with_capacity(n);
    for i in 0..n {
        let layer = i / WIDTH;
        let key: AssetKey = format!("l{layer:03}/a{i:06}").parse().unwrap();
        let origin = Origin::File {
            path: format!("sql/l{layer:03}/a{i:06}.sql"),
        };
        if layer == 0 {
            defs.push(AssetDef::new(key, AssetKind::Source, origin));
            continue;
        }
        let lo = layer.saturating_sub(2) * WIDTH;
        let hi = layer * WIDTH;
        let deps: Vec<AssetKey> = (0..1 + rng.below(3))
            .map(|_| defs[lo + rng.below(hi - lo)].key.clone())
            .collect();
        let mut def = AssetDef::new(key, AssetKind::Sql, origin).with_deps(deps);
        def.code_version = Some(CodeVersion::new(format!("{:016x}", rng.next())));
        def.group = format!("g{}", i % 20);
        match i % 20 {
            0 => {
                def.freshness =
                    Some(FreshnessPolicy::parse_compact("max_age=1d warn_after=12h").unwrap())
            }
            1 => {
                def.freshness = Some(
                    FreshnessPolicy::parse_compact(r#"cron="0 6 * * *" timezone=Europe/Paris"#)
                        .unwrap(),
                )
            }
            10 => def.freshness = Some(FreshnessPolicy::parse_compact("max_age=2h").unwrap()),
            _ => {}
        }
        defs.push(def);
    }
    defs
}

/// Writes one observation per source and one materialization per asset, upstream first.
async fn fill(store: &Store, graph: &AssetGraph) {
    let run = RunId::generate();
    let now = Utc::now();
    store
        .begin_run(
            &run,
            &NewRun {
                kind: RunKind::Materialize,
                selection: "",
                stale_only: false,
                triggered_by: "cli",
            },
            now,
        )
        .await
        .unwrap();
    let mut versions = std::collections::HashMap::new();
    let mut batch = Vec::new();
    for def in graph.iter() {
        let version = DataVersion::new(format!("{:032x}", xxh(def.key.as_str())));
        if def.kind == AssetKind::Source {
            store
                .record_observation(&Observation {
                    asset: def.key.clone(),
                    data_version: version.clone(),
                    file_count: 1,
                    byte_size: 1 << 20,
                    observed_at: now,
                    checked_at: now,
                })
                .await
                .unwrap();
        } else {
            batch.push(Materialization {
                id: MaterializationId::generate(),
                asset: def.key.clone(),
                run_id: run.clone(),
                code_version: def.code_version.clone().unwrap(),
                data_version: version.clone(),
                inputs: def
                    .deps
                    .iter()
                    .map(|d| InputVersion {
                        asset: d.clone(),
                        data_version: versions.get(d).cloned().unwrap(),
                    })
                    .collect(),
                location: format!("file:///data/{}/{}.parquet", def.key, run),
                row_count: 1000,
                byte_size: 64 << 10,
                duration_us: 50_000,
                created_at: now,
                data_time: Some(now),
                details: Default::default(),
                collected_at: None,
            });
        }
        versions.insert(def.key.clone(), version);
    }
    store.record_materializations(&batch).await.unwrap();
    store
        .finish_run(&run, RunStatus::Succeeded, Utc::now(), None)
        .await
        .unwrap();
}

fn xxh(s: &str) -> u128 {
    let mut h: u128 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h = (h ^ u128::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// Best (lowest) of `runs` timings of `f`, plus the last result.
fn best<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut out = None;
    for _ in 0..runs {
        let start = Instant::now();
        out = Some(f());
        best = best.min(start.elapsed());
    }
    (best, out.unwrap())
}

async fn bench(n: usize) {
    println!("\n== {n} assets ==");
    let defs = synthetic(n);
    let edges: usize = defs.iter().map(|d| d.deps.len()).sum();
    let (t, graph) = best(3, || AssetGraph::new(defs.clone()).unwrap());
    println!("graph: {n} assets, {edges} edges; built in {}", ms(t));

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/freshet.db", dir.path().display());
    let store = Store::open(&url).await.unwrap();
    let start = Instant::now();
    fill(&store, &graph).await;
    println!("store: filled in {}", ms(start.elapsed()));

    let now = SystemClock.now();
    let mut read = Duration::MAX;
    let mut judge = Duration::MAX;
    let mut total = Duration::MAX;
    let mut reports = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        let lineage = store.load_lineage().await.unwrap();
        let loaded = start.elapsed();
        let statuses = Statuses::compute(&graph, &lineage);
        reports = planner::report_all(&graph, &lineage, &statuses, now);
        let all = start.elapsed();
        read = read.min(loaded);
        judge = judge.min(all - loaded);
        total = total.min(all);
    }
    let fresh = reports.iter().filter(|r| r.status == Status::Fresh).count();
    println!(
        "status of all assets: {} (store read {}, judging {}); {fresh} fresh",
        ms(total),
        ms(read),
        ms(judge)
    );

    let lineage = store.load_lineage().await.unwrap();
    let (t, mut statuses) = best(3, || Statuses::compute(&graph, &lineage));
    println!("statuses alone: {}", ms(t));
    let (t, plan) = best(3, || {
        let statuses = Statuses::compute(&graph, &lineage);
        planner::plan(&graph, &lineage, &statuses, &PlanRequest::stale()).unwrap()
    });
    println!("plan from scratch: {} ({} steps)", ms(t), plan.steps.len());

    // Re-planning after one code change, graph and statuses in memory: edit, re-judge, plan.
    let mut graph = graph;
    let mut rng = Rng(42);
    let mut times = Vec::new();
    let mut steps = Vec::new();
    for round in 0..21 {
        let i = 1000 + rng.below(n - 1000);
        let mut def = graph.def(i).clone();
        def.code_version = Some(CodeVersion::new(format!("edit{round}")));
        let key = def.key.clone();
        let start = Instant::now();
        graph.replace(def).unwrap();
        statuses.refresh(&graph, &lineage, &key);
        let plan = planner::plan(&graph, &lineage, &statuses, &PlanRequest::stale()).unwrap();
        times.push(start.elapsed());
        steps.push(plan.steps.len());
    }
    times.sort();
    println!(
        "re-plan after one code change: median {}, max {} over {} edits (plans of {} to {} steps)",
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1]),
        times.len(),
        steps.iter().min().unwrap(),
        steps.iter().max().unwrap()
    );

    let facts = Facts::new(&graph, &lineage, &statuses, now);
    let selection = Selection::parse(&format!("+{}", graph.def(n - 1).key)).unwrap();
    let (t, chosen) = best(3, || selection.select(&graph, &facts).unwrap());
    println!("selection {selection}: {} ({} assets)", ms(t), chosen.len());
    let selection = Selection::parse("key:l01*/* and not status:fresh").unwrap();
    let (t, chosen) = best(3, || selection.select(&graph, &facts).unwrap());
    println!("selection {selection}: {} ({} assets)", ms(t), chosen.len());
    store.close().await;
}

fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10_000, 100_000]
    } else {
        sizes
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    for n in sizes {
        runtime.block_on(bench(n.max(2000)));
        if let Some(mb) = peak_rss_mb() {
            println!("peak memory (process so far): {mb:.0} MB");
        }
    }
}
