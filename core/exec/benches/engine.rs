//! The run engine's figures: per-step overhead of trivial SQL assets as a chain and as
//! independent assets, and the speed-up of CPU-heavy independent assets run concurrently.
//!
//! `cargo bench -p freshet-core --bench engine --profile perf [-- N HEAVY ROWS]` (defaults 1000,
//! 16, 100000000): N trivial assets, HEAVY CPU-heavy assets of ROWS rows each.

use std::path::Path;
use std::time::{Duration, Instant};

use freshet_core::{Catalogues, Executor, Overrides, PlanRequest, Project, StepOutcome, Store};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let arg = |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (n, heavy, rows) = (
        arg(0, 1000) as usize,
        arg(1, 16) as usize,
        arg(2, 100_000_000),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("engine benchmark on {cores} cores");

    let chain: Vec<(String, String)> = (0..n)
        .map(|i| {
            let query = if i == 0 {
                "SELECT 1 AS n".to_owned()
            } else {
                format!("SELECT n + 1 AS n FROM a{}", i - 1)
            };
            (format!("a{i}"), query)
        })
        .collect();
    let took = runtime.block_on(materialize_all(&chain, None));
    report(&format!("{n} trivial assets, a chain"), took, n);

    let independent: Vec<(String, String)> = (0..n)
        .map(|i| (format!("a{i}"), format!("SELECT {i} AS n")))
        .collect();
    let took = runtime.block_on(materialize_all(&independent, None));
    report(&format!("{n} trivial assets, independent"), took, n);

    let cpu: Vec<(String, String)> = (0..heavy)
        .map(|i| {
            (
                format!("h{i}"),
                format!(
                    "SELECT sum((value * {}) % 7919) AS s FROM generate_series(1, {rows})",
                    i + 1
                ),
            )
        })
        .collect();
    let cpu_before = cpu_time();
    let one = runtime.block_on(materialize_all(&cpu, Some(1)));
    report(
        &format!("{heavy} CPU-heavy assets, --concurrency 1"),
        one,
        heavy,
    );
    busy(cpu_before, one.took);
    let cpu_before = cpu_time();
    let default = runtime.block_on(materialize_all(&cpu, None));
    report(
        &format!("{heavy} CPU-heavy assets, default concurrency ({cores})"),
        default,
        heavy,
    );
    busy(cpu_before, default.took);
    println!(
        "speed-up of the default over --concurrency 1: {:.2}x",
        one.took.as_secs_f64() / default.took.as_secs_f64()
    );
}

fn report(what: &str, timing: Timing, steps: usize) {
    let per_step = |d: Duration| d.as_secs_f64() * 1000.0 / steps.max(1) as f64;
    println!(
        "{what}: {:.2} s, {:.2} ms per asset",
        timing.took.as_secs_f64(),
        per_step(timing.took)
    );
    println!(
        "  each step's own computing and writing (DataFusion, Parquet): {:.2} ms on average",
        per_step(timing.computing)
    );
}

/// This process's CPU time so far (user and system), from `/proc/self/stat`; zero elsewhere.
fn cpu_time() -> Duration {
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            // Fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    // Linux reports clock ticks of 1/100 s.
    Duration::from_millis(ticks * 10)
}

/// Prints how many cores were busy on average since `before` over `wall`.
fn busy(before: Duration, wall: Duration) {
    let used = cpu_time().saturating_sub(before);
    println!(
        "  cores busy on average: {:.2} (CPU {:.2} s)",
        used.as_secs_f64() / wall.as_secs_f64(),
        used.as_secs_f64()
    );
}

/// How long a run took (loading and opening excluded), and the sum of its steps' own time
/// computing and writing their outputs.
#[derive(Debug, Clone, Copy)]
struct Timing {
    took: Duration,
    computing: Duration,
}

/// A new project of `assets` (key, query) in a temporary folder, materialized from scratch.
async fn materialize_all(assets: &[(String, String)], concurrency: Option<usize>) -> Timing {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), "freshet.toml", "[project]\nname = \"bench\"\n");
    for (key, query) in assets {
        write(dir.path(), &format!("sql/{key}.sql"), query);
    }
    let overrides = Overrides {
        concurrency,
        ..Overrides::default()
    };
    let project = Project::load(dir.path(), &Catalogues::new(), &overrides).expect("project");
    let store = Store::open(project.database_url()).await.expect("store");
    let executor = Executor::new(project, store.clone()).expect("executor");
    let started = Instant::now();
    let report = executor
        .materialize(&PlanRequest::stale(), &())
        .await
        .expect("run");
    let took = started.elapsed();
    let computing: u64 = report
        .steps
        .iter()
        .filter_map(|(_, o)| match o {
            StepOutcome::Materialized(m) => Some(m.duration_us),
            _ => None,
        })
        .sum();
    assert_eq!(
        report.materialized(),
        assets.len(),
        "every asset materialized"
    );
    store.close().await;
    Timing {
        took,
        computing: Duration::from_micros(computing),
    }
}

fn write(dir: &Path, path: &str, text: &str) {
    let path = dir.join(path);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}
