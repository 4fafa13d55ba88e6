//! Automation benchmark. Prints figures; asserts nothing.
//!
//! ```sh
//! cargo bench -p freshet-server --bench automation --profile perf [-- N]
//! ```
//!
//! 1. One evaluation of every condition over N (default 10,000) Rust assets with history in a
//!    SQLite store (one materialization each, one in a hundred stale; eight in ten eager, one on
//!    a cron, one kept fresh by its policy): the first (every decision new and recorded), then
//!    the median and worst of 20 more (the daemon's steady state), facts loaded included.
//! 2. The latency from a source file changing to the first step of the run it causes starting,
//!    under the automation loop as `freshet daemon` runs it (median and worst of 10).

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use freshet_core::freshness::SystemClock;
use freshet_core::store::RunQuery;
use freshet_core::{Catalogues, Executor, Overrides, Project, Store};
use freshet_server::serve::AppState;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let n = args.first().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("automation benchmark on {cores} cores");
    evaluation(n).await;
    latency().await;
}

async fn evaluation(n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (project, store) = common::project(dir.path(), n, 100, true).await;
    let state = common::state(project, store);
    let mut evaluator = state.evaluator();
    let started = Instant::now();
    evaluator.evaluate().await.unwrap();
    println!(
        "{n} assets with conditions: first evaluation {} (every decision recorded)",
        ms(started.elapsed())
    );
    // The first evaluation requested the stale assets: let that run end first.
    let store = state.store().clone();
    let waited = Instant::now();
    while waited.elapsed() < Duration::from_secs(120) {
        let open = store
            .runs(&RunQuery {
                limit: 10,
                ..RunQuery::default()
            })
            .await
            .unwrap()
            .items
            .iter()
            .any(|r| !r.status.is_finished());
        if !open {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut times = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        evaluator.evaluate().await.unwrap();
        times.push(started.elapsed());
    }
    times.sort();
    println!(
        "  then: median {}, worst {} (of 20)",
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1])
    );
}

async fn latency() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "freshet.toml",
        "[project]\nname = \"bench\"\n[sources.raw]\npath = \"raw.csv\"\n",
    );
    write(dir.path(), "raw.csv", "n\n0\n");
    write(
        dir.path(),
        "sql/clean.sql",
        "-- @automation: eager\nSELECT n + 1 AS m FROM raw",
    );
    let project = Project::load(dir.path(), &Catalogues::new(), &Overrides::default()).unwrap();
    let store = Store::open(project.database_url()).await.unwrap();
    let executor = Executor::new(project.clone(), store.clone()).unwrap();
    let state = AppState::new(
        project,
        store.clone(),
        executor,
        Arc::new(SystemClock),
        "bench-token-0123456789".to_owned(),
        true,
    );
    let automation = state.spawn_automation();
    // The first run materializes what is missing.
    let mut runs_seen = wait_for_runs(&store, 1, Instant::now()).await.0;
    let mut latencies = Vec::new();
    for i in 1..=10 {
        // Let the previous run end.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let changed_at = Utc::now();
        write(dir.path(), "raw.csv", &format!("n\n{i}\n"));
        let (seen, started) = wait_for_runs(&store, runs_seen + 1, Instant::now()).await;
        runs_seen = seen;
        if let Some(started) = started {
            latencies.push((started - changed_at).to_std().unwrap_or_default());
        }
    }
    state.stop();
    let _ = automation.await;
    state.finish_runs(Duration::from_secs(10)).await;
    latencies.sort();
    match (latencies.get(latencies.len() / 2), latencies.last()) {
        (Some(median), Some(worst)) => println!(
            "source change to the first step starting: median {}, worst {} (of {})",
            ms(*median),
            ms(*worst),
            latencies.len()
        ),
        _ => println!("source change to the first step starting: no run seen"),
    }
}

/// Waits (at most 10 s) for `count` runs, and returns how many there are and when the newest
/// one's first step started.
async fn wait_for_runs(
    store: &Store,
    count: usize,
    since: Instant,
) -> (usize, Option<chrono::DateTime<Utc>>) {
    while since.elapsed() < Duration::from_secs(10) {
        let page = store
            .runs(&RunQuery {
                limit: 100,
                ..RunQuery::default()
            })
            .await
            .unwrap();
        if page.items.len() >= count {
            let newest = &page.items[0];
            let steps = store.run_steps(&newest.id).await.unwrap();
            if let Some(started) = steps.iter().filter_map(|s| s.started_at).min() {
                return (page.items.len(), Some(started));
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (count - 1, None)
}

fn write(dir: &Path, path: &str, text: &str) {
    let path = dir.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}
