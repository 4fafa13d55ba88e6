//! The data plane: outputs split over several files that read back as one table, sorts larger
//! than the memory limit, versions read back and collected by `gc`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::{TempProject, edit, files_under, long_project, start_materialize};

/// A project whose source `raw_orders` is `orders` generated orders in Parquet (generated once
/// per test into the project's `data/`).
fn orders_project(orders: u64, toml_extra: &str, files: &[(&str, &str)]) -> TempProject {
    let mut all = vec![(
        "freshet.toml".to_owned(),
        format!(
            "[project]\nname = \"t\"\n{toml_extra}\n[sources.raw_orders]\npath = \"data/orders.parquet\"\n"
        ),
    )];
    all.extend(
        files
            .iter()
            .map(|(p, t)| ((*p).to_owned(), (*t).to_owned())),
    );
    let files: Vec<(&str, &str)> = all.iter().map(|(p, t)| (p.as_str(), t.as_str())).collect();
    let project = TempProject::with_files(&files);
    freshet_assets::generate::write_shop(&project.path().join("data"), orders, 7)
        .expect("generate orders");
    project
}

/// Asserts that a command said each of `texts` on stderr.
fn said(out: &crate::support::Output, texts: &[&str]) {
    for text in texts {
        assert!(
            out.stderr.contains(text),
            "{text:?} not in:\n{}",
            out.stderr
        );
    }
}

fn history(project: &TempProject, key: &str) -> Vec<Value> {
    let out = project.ok(&["history", key, "--json"]);
    serde_json::from_str(&out.stdout).expect("history --json is JSON")
}

fn local_path(location: &str) -> PathBuf {
    url::Url::parse(location)
        .expect("a URL")
        .to_file_path()
        .expect("a local path")
}

fn parquet_files(folder: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "parquet"));
    files.sort();
    files
}

/// Reads a version's folder with pyarrow (an independent reader): its row count and the sum of
/// `column`.
fn pyarrow_count_and_sum(folder: &Path, column: &str) -> (u64, u64) {
    let python = std::env::var("FRESHET_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let out = Command::new(python)
        .args([
            "-c",
            "import sys, pyarrow.dataset as ds, pyarrow.compute as pc\n\
             t = ds.dataset(sys.argv[1], format='parquet').to_table()\n\
             print(t.num_rows, pc.sum(t[sys.argv[2]]).as_py())",
        ])
        .arg(folder)
        .arg(column)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "pyarrow: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text
        .split_whitespace()
        .map(|p| p.parse::<u64>().expect("a number"));
    (parts.next().expect("rows"), parts.next().expect("sum"))
}

#[test]
fn a_large_output_is_several_files_read_as_one_table_with_the_fingerprint_of_one_file() {
    const ORDERS: u64 = 1_000_000;
    let project = orders_project(
        ORDERS,
        "",
        &[
            ("sql/all_orders.sql", "SELECT * FROM raw_orders"),
            // Sorted, so written in order by one writer: one file, the rows in another order.
            (
                "sql/sorted_orders.sql",
                "SELECT * FROM raw_orders ORDER BY order_id DESC",
            ),
            (
                "sql/order_count.sql",
                "SELECT count(*) AS n, sum(order_id) AS s FROM all_orders",
            ),
        ],
    );
    project.ok(&["materialize"]);

    let split = &history(&project, "all_orders")[0];
    let sorted = &history(&project, "sorted_orders")[0];
    assert!(
        split["file_count"].as_u64().expect("file_count") >= 2,
        "a 1M-row output is split: {split}"
    );
    assert_eq!(
        sorted["file_count"], 1,
        "a sorted output is one file: {sorted}"
    );
    assert_eq!(split["row_count"], ORDERS);
    assert_eq!(sorted["row_count"], ORDERS);
    assert_eq!(
        split["data_version"], sorted["data_version"],
        "the same rows have the same data version however they are split or ordered"
    );
    let folder = local_path(split["location"].as_str().expect("location"));
    assert!(split["location"].as_str().is_some_and(|l| l.ends_with('/')));
    assert_eq!(
        parquet_files(&folder).len() as u64,
        split["file_count"].as_u64().expect("count")
    );
    let want_sum = ORDERS * (ORDERS + 1) / 2;
    assert_eq!(
        pyarrow_count_and_sum(&folder, "order_id"),
        (ORDERS, want_sum)
    );

    // A downstream asset reads the folder as one table.
    let preview = project.ok(&["preview", "order_count"]);
    assert!(
        preview.stdout.contains(&ORDERS.to_string())
            && preview.stdout.contains(&want_sum.to_string()),
        "{}",
        preview.stdout
    );
    // The sorted output keeps its order for a reader.
    let first = project.ok(&["preview", "sorted_orders", "--limit", "1"]);
    assert!(
        first.stdout.contains(&format!("| {ORDERS} ")),
        "{}",
        first.stdout
    );

    // The recorded schema, and zstd by default.
    let schema = split["schema"].as_array().expect("schema");
    let names: Vec<&str> = schema.iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(
        names,
        ["order_id", "customer_id", "ordered_at", "amount", "status"]
    );
}

#[test]
fn compression_is_set_per_project_and_per_asset() {
    let project = TempProject::with_files(&[
        (
            "freshet.toml",
            "[project]\nname = \"t\"\n[execution]\ncompression = \"snappy\"\n",
        ),
        (
            "sql/by_project.sql",
            "SELECT * FROM generate_series(1, 1000)",
        ),
        (
            "sql/by_asset.sql",
            "-- @compression: zstd(9)\nSELECT * FROM generate_series(1, 1000)",
        ),
        (
            "sql/plain.sql",
            "-- @compression: none\nSELECT * FROM generate_series(1, 1000)",
        ),
    ]);
    project.ok(&["materialize"]);
    let python = std::env::var("FRESHET_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    for (key, want) in [
        ("by_project", "SNAPPY"),
        ("by_asset", "ZSTD"),
        ("plain", "UNCOMPRESSED"),
    ] {
        let folder = local_path(
            history(&project, key)[0]["location"]
                .as_str()
                .expect("location"),
        );
        let file = parquet_files(&folder).pop().expect("a file");
        let out = Command::new(&python)
            .args([
                "-c",
                "import sys, pyarrow.parquet as pq\n\
                 print(pq.ParquetFile(sys.argv[1]).metadata.row_group(0).column(0).compression)",
            ])
            .arg(&file)
            .output()
            .expect("python");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), want, "{key}");
    }

    let bad = TempProject::with_files(&[
        ("freshet.toml", "[project]\nname = \"t\"\n"),
        ("sql/a.sql", "-- @compression: zip\nSELECT 1 AS n"),
    ]);
    let out = bad.run(&["materialize"]);
    assert!(!out.success);
    said(&out, &["invalid compression \"zip\""]);
}

#[test]
fn a_sort_four_times_larger_than_the_memory_limit_spills_and_completes() {
    const ORDERS: u64 = 1_000_000;
    // About 45 MB of orders in memory against a limit of 10 MB.
    let project = orders_project(
        ORDERS,
        "[execution]\nmemory_limit = \"10MB\"\n",
        &[(
            "sql/by_amount.sql",
            "SELECT * FROM raw_orders ORDER BY amount, order_id",
        )],
    );
    project.ok(&["materialize", "by_amount"]);
    let v = &history(&project, "by_amount")[0];
    assert_eq!(v["row_count"], ORDERS);
    let first = project.ok(&["preview", "by_amount", "--limit", "3"]);
    // The smallest amounts are refunds (negative).
    assert!(first.stdout.contains("| -"), "{}", first.stdout);

    // The limit is real: what cannot spill (a join's hash table of every order) runs out.
    project.write(
        "sql/self_join.sql",
        "SELECT a.order_id, b.amount FROM raw_orders a JOIN raw_orders b ON a.order_id = b.order_id",
    );
    let out = project.run(&["materialize", "self_join"]);
    assert!(!out.success, "{}", out.stderr);
    assert!(out.stderr.contains("esources exhausted"), "{}", out.stderr);
    // And the same join passes with the limit raised on the command line.
    project.ok(&["--memory-limit", "2GB", "materialize", "self_join"]);
}

#[test]
fn preview_reads_an_old_version_and_gc_keeps_what_is_current_recent_or_read() {
    let project = long_project();
    // A run that reads seed's first version while it writes big, for ever.
    let (mut child, _run, _rx) = start_materialize(&project);
    let v1 = history(&project, "seed")[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    for n in 2..=4 {
        edit(
            &project,
            "sql/seed.sql",
            &format!("{}", n - 1),
            &n.to_string(),
        );
        project.ok(&["materialize", "seed"]);
    }
    let versions = history(&project, "seed");
    assert_eq!(versions.len(), 4);
    let id = |i: usize| versions[i]["id"].as_str().expect("id").to_owned();
    let folder = |i: usize| local_path(versions[i]["location"].as_str().expect("location"));
    assert_eq!(id(3), v1);

    // An old version reads back after new ones.
    let old = project.ok(&["preview", "seed", "--version", &v1]);
    assert!(old.stdout.contains("| 1 "), "{}", old.stdout);
    let third = project.ok(&["preview", "seed", "--version", &id(1)]);
    assert!(third.stdout.contains("| 3 "), "{}", third.stdout);
    let unknown = project.run(&[
        "preview",
        "seed",
        "--version",
        "0190e5a0-0000-7000-8000-000000000000",
    ]);
    assert!(!unknown.success);
    said(&unknown, &["seed has no version"]);

    // big is being computed from seed: seed's old versions stay, and so does what big writes.
    let big_folder = project.path().join(".freshet/data/big");
    let dry = project.ok(&["gc", "--keep", "1", "--dry-run"]);
    said(
        &dry,
        &[
            "would remove 0 versions",
            "kept 2 that running steps may read",
        ],
    );
    let busy = project.ok(&["gc", "--keep", "1"]);
    said(&busy, &["removed 0 versions", "and 0 unreferenced files"]);
    assert!(folder(3).exists() && folder(2).exists());

    // Killed mid-write: big's files are orphans now, and seed's old versions are no longer read.
    // (Bounded: big writes for ever, and its first file appears within seconds.)
    let mut waited = 0;
    while files_under(&big_folder).is_empty() && waited < 600 {
        std::thread::sleep(Duration::from_millis(100));
        waited += 1;
    }
    assert!(
        !files_under(&big_folder).is_empty(),
        "big started writing within a minute"
    );
    assert!(!busy.stdout.contains("big"), "{}", busy.stdout);
    child.kill().expect("kill");
    child.wait().expect("wait");
    assert!(
        big_folder.exists(),
        "the killed write left files behind for gc to find"
    );
    let dry = project.ok(&["gc", "--keep", "1", "--dry-run"]);
    said(&dry, &["would remove 2 versions"]);
    assert!(folder(3).exists(), "a dry run removes nothing");
    let done = project.ok(&["gc", "--keep", "1"]);
    said(&done, &["removed 2 versions"]);
    assert!(
        !done.stderr.contains("and 0 unreferenced files"),
        "{}",
        done.stderr
    );
    assert!(
        done.stdout.contains(&format!("removed seed version {v1}")),
        "{}",
        done.stdout
    );
    assert!(
        !folder(3).exists() && !folder(2).exists(),
        "the two oldest are gone"
    );
    assert!(
        folder(1).exists() && folder(0).exists(),
        "current and the one before stay"
    );
    let left: Vec<PathBuf> = files_under(&big_folder);
    assert!(
        left.is_empty(),
        "the killed write's files are gone: {left:?}"
    );

    // The history says what gc did; a removed version cannot be read, a kept one can.
    let after = history(&project, "seed");
    assert!(after[3]["collected_at"].is_string() && after[2]["collected_at"].is_string());
    assert!(after[1]["collected_at"].is_null() && after[0]["collected_at"].is_null());
    let gone = project.run(&["preview", "seed", "--version", &v1]);
    assert!(!gone.success);
    said(&gone, &["was removed by `freshet gc`"]);
    let text = project.ok(&["history", "seed"]);
    assert!(text.stdout.contains("removed by gc"), "{}", text.stdout);
    assert!(text.stdout.contains("current"), "{}", text.stdout);
    project.ok(&["preview", "seed", "--version", &id(1)]);

    // Nothing left to do.
    let again = project.ok(&["gc", "--keep", "1"]);
    said(&again, &["removed 0 versions", "and 0 unreferenced files"]);
}

#[test]
fn a_rust_asset_records_its_metadata() {
    let project = TempProject::demo();
    project.ok(&["materialize", "+web_sessions"]);
    let v = &history(&project, "web_sessions")[0];
    let sessions = v["metadata"]["sessions"]
        .as_f64()
        .expect("sessions metadata");
    assert!(sessions > 0.0, "{v}");
    assert_eq!(Some(sessions as u64), v["row_count"].as_u64());
    let rate = v["metadata"]["purchase_rate"]
        .as_f64()
        .expect("purchase_rate");
    assert!((0.0..=1.0).contains(&rate), "{v}");
    let text = project.ok(&["history", "web_sessions"]);
    assert!(
        text.stdout.contains(&format!("sessions={sessions}")),
        "{}",
        text.stdout
    );
}

#[test]
fn the_generator_is_deterministic() {
    let a = tempfile::tempdir().expect("temp");
    let b = tempfile::tempdir().expect("temp");
    freshet_assets::generate::write_shop(a.path(), 5_000, 1).expect("generate");
    freshet_assets::generate::write_shop(b.path(), 5_000, 1).expect("generate");
    for file in ["orders.parquet", "customers.parquet"] {
        assert_eq!(
            std::fs::read(a.path().join(file)).expect("read"),
            std::fs::read(b.path().join(file)).expect("read"),
            "{file}"
        );
    }
}

#[test]
fn a_rust_asset_streams_its_batches_into_several_files() {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
    use freshet_core::{
        AssetContext, AssetOutput, BoxError, Catalogue, Catalogues, Executor, Overrides,
        PlanRequest, Project, RustAsset, Store,
    };
    use futures::StreamExt as _;

    const BATCHES: i64 = 80;
    const ROWS: i64 = 65_536;
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("freshet.toml"),
        "[project]\nname = \"t\"\ncatalogues = [\"streams\"]\n",
    )
    .expect("write");
    // 80 batches of 512 KiB each, made one at a time as the writer asks for them.
    let catalogues = Catalogues::new().with(
        Catalogue::new("streams").asset(RustAsset::new("counted").code_version("1").compute(
            |ctx: AssetContext| async move {
                let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
                let batches = futures::stream::iter(0..BATCHES).map({
                    let schema = schema.clone();
                    move |b| {
                        let values = Int64Array::from_iter_values(b * ROWS..(b + 1) * ROWS);
                        Ok(RecordBatch::try_new(
                            schema.clone(),
                            vec![Arc::new(values)],
                        )?)
                    }
                });
                ctx.add_metadata("batches", BATCHES)?;
                let stream: datafusion::execution::SendableRecordBatchStream =
                    Box::pin(RecordBatchStreamAdapter::new(schema, batches));
                Ok::<_, BoxError>(AssetOutput::Stream(stream))
            },
        )),
    );
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let m = runtime.block_on(async {
        let project =
            Project::load(dir.path(), &catalogues, &Overrides::default()).expect("project");
        let store = Store::open(project.database_url()).await.expect("store");
        let executor = Executor::new(project, store.clone()).expect("executor");
        let report = executor
            .materialize(&PlanRequest::stale(), &())
            .await
            .expect("materialize");
        assert_eq!(report.materialized(), 1);
        let key = "counted".parse().expect("key");
        store
            .load_heads(&[key])
            .await
            .expect("heads")
            .materializations()
            .next()
            .cloned()
            .expect("materialized")
    });
    let total = (BATCHES * ROWS) as u64;
    assert_eq!(m.row_count, total);
    assert!(m.details.file_count >= 2, "{:?}", m.details);
    assert_eq!(m.details.metadata["batches"], (BATCHES as f64).into());
    let n = total - 1;
    assert_eq!(
        pyarrow_count_and_sum(&local_path(&m.location), "n"),
        (total, n * (n + 1) / 2)
    );
}
