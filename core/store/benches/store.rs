//! Metadata store benchmark, on both backends: a SQLite file in a temporary folder, and a new
//! database on a PostgreSQL server (`FRESHET_TEST_POSTGRES`, else a throwaway cluster started
//! with `tests/postgres.sh` for the length of the run). Prints figures; asserts nothing.
//!
//! ```sh
//! cargo bench -p freshet-store --bench store --profile perf -- 100000 10000
//! ```
//!
//! `FRESHET_BENCH_BACKENDS=sqlite` (or `postgres`) runs one backend only.
//!
//! Measures: recording RECORDS materializations (one input each, spread over ASSETS assets) in
//! batches of 1,000, as an import does; reading the latest materialization of every asset (what
//! every status and plan starts from); one asset's newest page of history; the newest page of
//! runs; and the partition states of 10 assets of 1,000,000 partitions each, read back whole,
//! built from 1,000 range commits and 20,000 single ones, and in the worst case from a commit
//! per partition; adding 100,000 dynamic partition keys in one call.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::Utc;
use freshet_plan::model::{
    AssetKey, CodeVersion, DataVersion, InputVersion, Materialization, MaterializationId, RunId,
};
use freshet_plan::partitions::{PartitionSet, PartitionState};
use freshet_store::{NewRun, RunKind, RunQuery, RunStatus, Store};
use sqlx::Connection as _;

const BATCH: usize = 1000;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let records = args.first().copied().unwrap_or(100_000);
    let assets = args.get(1).copied().unwrap_or(10_000);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    println!(
        "store benchmark: {records} materializations over {assets} assets, batches of {BATCH}"
    );

    let only = std::env::var("FRESHET_BENCH_BACKENDS").unwrap_or_default();
    let wanted = |backend: &str| only.is_empty() || only.split(',').any(|b| b == backend);
    let dir = tempfile::tempdir().unwrap();
    if wanted("sqlite") {
        let sqlite = format!("sqlite://{}/freshet.db", dir.path().display());
        runtime.block_on(bench("sqlite", &sqlite, records, assets));
    }
    if !wanted("postgres") {
        return;
    }

    let (server, cluster) = match std::env::var("FRESHET_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => (url, None),
        _ => {
            let cluster = Cluster::start();
            (cluster.url.clone(), Some(cluster))
        }
    };
    let url = runtime.block_on(new_database(&server));
    runtime.block_on(bench("postgres", &url, records, assets));
    drop(cluster);
}

async fn bench(backend: &str, url: &str, records: usize, assets: usize) {
    let store = Store::open(url).await.unwrap();
    let keys: Vec<AssetKey> = (0..assets)
        .map(|i| format!("asset_{i:05}").parse().unwrap())
        .collect();
    let start = Utc::now();
    let mut made = 0;
    let mut took = Duration::ZERO;
    while made < records {
        let run = RunId::generate();
        store
            .begin_run(
                &run,
                &NewRun {
                    kind: RunKind::Materialize,
                    selection: "",
                    stale_only: false,
                    triggered_by: "bench",
                },
                start,
            )
            .await
            .unwrap();
        let batch: Vec<Materialization> = (made..(made + BATCH).min(records))
            .map(|i| record(&keys, &run, i, start))
            .collect();
        let t = Instant::now();
        store.record_materializations(&batch).await.unwrap();
        took += t.elapsed();
        made += batch.len();
        store
            .finish_run(&run, RunStatus::Succeeded, start, None)
            .await
            .unwrap();
    }
    println!(
        "{backend:>8}  record {records} materializations: {:.2} s, {:.0} records/s",
        took.as_secs_f64(),
        records as f64 / took.as_secs_f64()
    );

    let mut latest = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        let lineage = store.load_lineage().await.unwrap();
        latest.push(t.elapsed());
        assert_eq!(lineage.materializations().count(), assets);
    }
    println!(
        "{backend:>8}  latest materialization of each of {assets} assets: median {:.1} ms (min {:.1})",
        ms(median(&mut latest)),
        ms(*latest.iter().min().unwrap())
    );

    let mut page = Vec::new();
    for i in 0..200 {
        let t = Instant::now();
        let history = store
            .materializations_of(&keys[i % assets], 50, None)
            .await
            .unwrap();
        page.push(t.elapsed());
        assert!(!history.items.is_empty());
    }
    println!(
        "{backend:>8}  one asset's newest 50 versions: median {:.2} ms",
        ms(median(&mut page))
    );

    let mut runs = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let listed = store
            .runs(&RunQuery {
                limit: 50,
                before: None,
                status: None,
                asset: None,
            })
            .await
            .unwrap();
        runs.push(t.elapsed());
        assert_eq!(listed.items.len(), 50.min(records.div_ceil(BATCH)));
    }
    println!(
        "{backend:>8}  newest 50 runs: median {:.2} ms",
        ms(median(&mut runs))
    );

    for (what, singles) in [
        ("1,000 range + 20,000 single commits", Some(20_000)),
        ("a commit per partition", None),
    ] {
        let state = partition_state(singles);
        let size = state.encode().len();
        for i in 0..10 {
            let key: AssetKey = format!("partitioned_{i}").parse().unwrap();
            store
                .save_partition_state(&key, "hourly", &state, start)
                .await
                .unwrap();
        }
        let mut load = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let states = store.partition_states().await.unwrap();
            load.push(t.elapsed());
            assert_eq!(states.len(), 10);
        }
        println!(
            "{backend:>8}  partition states of 10 assets x 1,000,000 partitions ({what}, {:.1} MB each): median {:.1} ms",
            size as f64 / 1e6,
            ms(median(&mut load))
        );
    }
    let keys: Vec<String> = (0..100_000).map(|i| format!("customer_{i:06}")).collect();
    let t = Instant::now();
    let added = store
        .add_partition_keys("customers", &keys, start)
        .await
        .unwrap();
    let took = t.elapsed();
    assert_eq!(added, keys.len());
    let t = Instant::now();
    let listed = store.partition_keys("customers").await.unwrap();
    assert_eq!(listed.len(), keys.len());
    println!(
        "{backend:>8}  adding 100,000 dynamic partition keys in one call: {:.2} s; reading them back: {:.1} ms",
        took.as_secs_f64(),
        ms(t.elapsed())
    );
    store.close().await;
}

/// The state of an asset of 1,000,000 partitions: 1,000 range commits then `singles` single
/// ones at scattered partitions, or (`None`) a commit per partition.
fn partition_state(singles: Option<u32>) -> PartitionState {
    const N: u32 = 1_000_000;
    let mut state = PartitionState::default();
    let mut seq = 0u64;
    let mut commit = |state: &mut PartitionState, range: std::ops::Range<u32>| {
        seq += 1;
        let changed = PartitionSet::from_range(range.clone());
        state.commit(range, seq, seq - 1, 1, &changed);
    };
    match singles {
        Some(singles) => {
            for i in 0..1000 {
                commit(&mut state, i * 1000..(i + 1) * 1000);
            }
            let mut x = 0x9E37_79B9u32;
            for _ in 0..singles {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let o = x % N;
                commit(&mut state, o..o + 1);
            }
        }
        None => {
            for o in 0..N {
                commit(&mut state, o..o + 1);
            }
        }
    }
    state
}

fn record(keys: &[AssetKey], run: &RunId, i: usize, at: chrono::DateTime<Utc>) -> Materialization {
    let asset = keys[i % keys.len()].clone();
    let upstream = keys[(i + 1) % keys.len()].clone();
    Materialization {
        id: MaterializationId::generate(),
        asset,
        run_id: run.clone(),
        code_version: CodeVersion::new("sql:0123456789abcdef"),
        data_version: DataVersion::new(format!("{i:032x}")),
        inputs: vec![InputVersion {
            asset: upstream,
            data_version: DataVersion::new(format!("{:032x}", i + 1)),
        }],
        location: format!("file:///data/asset/{i}/"),
        row_count: 1000,
        byte_size: 65_536,
        duration_us: 12_345,
        created_at: at + chrono::Duration::microseconds(i as i64),
        data_time: Some(at),
        details: Default::default(),
        collected_at: None,
    }
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn new_database(server: &str) -> String {
    sqlx::any::install_default_drivers();
    let name = format!("bench_{}", RunId::generate().to_string().replace('-', ""));
    let mut conn = sqlx::AnyConnection::connect(server).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let mut url = url::Url::parse(server).unwrap();
    url.set_path(&name);
    url.to_string()
}

/// A throwaway PostgreSQL cluster (tests/postgres.sh), stopped and removed when dropped.
struct Cluster {
    url: String,
    dir: String,
}

impl Cluster {
    fn start() -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/postgres.sh");
        let out = Command::new(&script).arg("start").output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let value = |name: &str| {
            text.lines()
                .find_map(|l| {
                    l.strip_prefix(&format!("export {name}='"))?
                        .strip_suffix('\'')
                })
                .unwrap()
                .to_owned()
        };
        Self {
            url: value("FRESHET_TEST_POSTGRES"),
            dir: value("FRESHET_TEST_PGDIR"),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/postgres.sh");
        let _ = Command::new(script).args(["stop", &self.dir]).status();
    }
}
