//! The ETL benchmark partitioned by day: the same orders rescaled to 102 days and written one
//! folder per day (`date=YYYY-MM-DD/`), a source partitioned by day, and the cleaning step, the
//! daily aggregate and a per-day join with the customers as daily-partitioned SQL assets.
//!
//! Measured, each a whole `freshet materialize` process:
//! - the full build of the first 100 days (300 partitions);
//! - the re-run after one new day lands (the 101st), which must run that day alone;
//! - the files that re-run opened, counted with `strace` on a second new day (the 102nd): how
//!   many belong to a day other than the new one (the target is none).
//!
//! Run with: `cargo bench -p freshet-assets --bench etl -- partitioned [ORDERS [RUNS]]`.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use super::{Measured, measure, round2};

/// Days of data: 100 built at first, then one new day timed and one counted.
const DAYS: u32 = 102;
const FIRST_DAYS: u32 = 100;

/// The assets, partitioned by day like their source: (name, query).
const ASSETS: [(&str, &str); 3] = [
    (
        "clean_orders",
        "-- @partitions: daily\n\
         SELECT order_id, customer_id, ordered_at, CAST(ordered_at AS DATE) AS order_date, \
         upper(status) AS status, amount, round(amount * 0.19, 2) AS tax, amount >= 100 AS is_large \
         FROM raw_orders WHERE status <> 'cancelled' AND amount > 0",
    ),
    (
        "daily_revenue",
        "-- @partitions: daily\n\
         SELECT order_date, status, count(*) AS orders, sum(amount) AS revenue, sum(tax) AS tax \
         FROM clean_orders GROUP BY order_date, status",
    ),
    (
        "customer_daily_revenue",
        "-- @partitions: daily\n\
         SELECT c.customer_id, c.name, c.country, o.order_date, count(*) AS orders, \
         sum(o.amount) AS revenue \
         FROM clean_orders o JOIN raw_customers c ON o.customer_id = c.customer_id \
         GROUP BY c.customer_id, c.name, c.country, o.order_date",
    ),
];

pub(super) fn run(
    target: &Path,
    data: &Path,
    python: &Path,
    orders: u64,
    runs: usize,
) -> anyhow::Result<()> {
    let days = target.join(format!("bench-data/orders-{orders}-days"));
    if !days.join("done").exists() {
        split_by_day(python, data, &days)?;
    }
    println!(
        "ETL benchmark by day: {orders} orders over {DAYS} days (the first {FIRST_DAYS} built, then \
         one new day), {runs} runs"
    );
    let freshet = env!("CARGO_BIN_EXE_freshet");
    let materialize = |project: &Path| {
        let mut command = Command::new(freshet);
        command
            .arg("--project")
            .arg(project)
            .arg("materialize")
            .env("RUST_LOG", "warn");
        command
    };
    let mut full = Vec::new();
    let mut incremental = Vec::new();
    let mut opened = None;
    for _ in 0..runs {
        let project = tempfile::tempdir_in(target)?;
        let landing = project.path().join("orders");
        std::fs::create_dir_all(&landing)?;
        for day in 0..FIRST_DAYS {
            land(&days, &landing, day)?;
        }
        write_project(project.path(), &landing, data)?;
        let run = measure(&mut materialize(project.path()))?;
        anyhow::ensure!(
            ASSETS.iter().all(|(name, _)| run
                .stderr
                .contains(&format!("{name} materialized {FIRST_DAYS} partitions ("))),
            "the full build did not run {FIRST_DAYS} partitions per asset:\n{}",
            run.stderr
        );
        full.push(run);
        land(&days, &landing, FIRST_DAYS)?;
        let run: Measured = measure(&mut materialize(project.path()))?;
        anyhow::ensure!(
            run_made_one_day(&run.stderr),
            "the re-run did not run one partition per asset:\n{}",
            run.stderr
        );
        incremental.push(run);
        if opened.is_none() {
            land(&days, &landing, FIRST_DAYS + 1)?;
            opened = Some(count_opened(project.path(), &landing, FIRST_DAYS + 1)?);
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let f = median(full.iter().map(|r| r.wall.as_secs_f64()).collect());
    let i = median(incremental.iter().map(|r| r.wall.as_secs_f64()).collect());
    println!();
    println!("full build ({FIRST_DAYS} days)   {f:>8.2}s");
    println!(
        "one new day            {i:>8.2}s   {:.3}x the full build",
        i / f
    );
    if let Some((outside, inside)) = opened {
        println!(
            "files opened by a re-run after a new day: {inside} of the new day, {outside} of \
             other days (data files of the source and of the partitioned assets)"
        );
    }
    println!(
        "runs (s): full {:?}, one new day {:?}",
        full.iter()
            .map(|r| round2(r.wall.as_secs_f64()))
            .collect::<Vec<_>>(),
        incremental
            .iter()
            .map(|r| round2(r.wall.as_secs_f64()))
            .collect::<Vec<_>>()
    );
    Ok(())
}

/// `YYYY-MM-DD` of day `day` (from 2024-01-01).
fn date(day: u32) -> String {
    let start = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).expect("a date");
    (start + chrono::Days::new(u64::from(day))).to_string()
}

/// Rescales the orders' times onto [`DAYS`] days from 2024-01-01 and writes one folder per day
/// (`date=YYYY-MM-DD/data_0.parquet`, zstd), with DuckDB.
fn split_by_day(python: &Path, data: &Path, days: &Path) -> anyhow::Result<()> {
    let _ = std::fs::remove_dir_all(days);
    std::fs::create_dir_all(days)?;
    let script = format!(
        "import duckdb\n\
         con = duckdb.connect()\n\
         con.execute(\"\"\"COPY (SELECT order_id, customer_id, ordered_at, amount, status, \
         CAST(ordered_at AS DATE) AS date FROM (SELECT order_id, customer_id, \
         TIMESTAMP '2024-01-01' + to_microseconds(CAST((epoch_us(ordered_at) - m) * ({DAYS} * 86400000000.0 / s) AS BIGINT)) \
         AS ordered_at, amount, status FROM read_parquet('{orders}'), \
         (SELECT min(epoch_us(ordered_at)) AS m, max(epoch_us(ordered_at)) - min(epoch_us(ordered_at)) + 1 AS s \
          FROM read_parquet('{orders}')))) \
         TO '{out}' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (date))\"\"\")\n",
        orders = data.join("orders.parquet").display(),
        out = days.display(),
    );
    let out = Command::new(python).arg("-c").arg(script).output()?;
    anyhow::ensure!(
        out.status.success(),
        "splitting the orders by day failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(days.join("done"), "")?;
    Ok(())
}

/// Copies day `day`'s folder into the project's landing folder.
fn land(days: &Path, landing: &Path, day: u32) -> anyhow::Result<()> {
    let name = format!("date={}", date(day));
    let to = landing.join(&name);
    std::fs::create_dir_all(&to)?;
    for file in std::fs::read_dir(days.join(&name))? {
        let file = file?;
        std::fs::copy(file.path(), to.join(file.file_name()))?;
    }
    Ok(())
}

fn write_project(dir: &Path, landing: &Path, data: &Path) -> anyhow::Result<()> {
    std::fs::write(
        dir.join("freshet.toml"),
        format!(
            "[project]\nname = \"etl_days\"\n\n\
             [partitions.daily]\nevery = \"day\"\nstart = \"2024-01-01\"\n\n\
             [sources.raw_orders]\npath = \"{}/date={{daily}}/*.parquet\"\n\n\
             [sources.raw_customers]\npath = \"{}\"\n",
            landing.display(),
            data.join("customers.parquet").display()
        ),
    )?;
    std::fs::create_dir_all(dir.join("sql"))?;
    for (name, query) in ASSETS {
        std::fs::write(dir.join(format!("sql/{name}.sql")), query)?;
    }
    Ok(())
}

/// Whether a run's lines say each asset materialized one partition.
fn run_made_one_day(lines: &str) -> bool {
    ASSETS
        .iter()
        .all(|(name, _)| lines.contains(&format!("{name} materialized 1 partition (")))
}

/// Runs `freshet materialize` under `strace` after day `day` landed: of the Parquet files it
/// opened (the source's and the partitioned assets' versions), how many belong to other days,
/// and how many to that day.
fn count_opened(project: &Path, landing: &Path, day: u32) -> anyhow::Result<(usize, usize)> {
    let trace = project.join("strace.txt");
    let out = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=openat", "-o"])
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_freshet"))
        .arg("--project")
        .arg(project)
        .arg("materialize")
        .env("RUST_LOG", "warn")
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "strace freshet materialize failed (is strace installed?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&trace)?;
    // Opened paths are normalized: compare with normalized folders.
    let landing = landing.canonicalize()?;
    let project = project.canonicalize()?;
    let new_day = format!("={}/", date(day));
    let mut files = BTreeSet::new();
    for line in text.lines().filter(|l| !l.contains("= -1")) {
        let Some(path) = line.split('"').nth(1) else {
            continue;
        };
        let ours = path.starts_with(&landing.display().to_string())
            || path.starts_with(&project.join(".freshet/data").display().to_string());
        if ours && path.ends_with(".parquet") && (path.contains("date=") || path.contains("daily="))
        {
            files.insert(path.to_owned());
        }
    }
    let inside = files.iter().filter(|p| p.contains(&new_day)).count();
    Ok((files.len() - inside, inside))
}
