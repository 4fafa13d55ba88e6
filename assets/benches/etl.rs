//! The ETL benchmark: generated orders through a cleaning step, a daily aggregate and a join
//! with the customers, each a SQL asset writing zstd Parquet, with `freshet materialize` and with
//! DuckDB running the same queries on the same files with the same thread count, side by side.
//!
//! Run with: `cargo bench -p freshet-assets --bench etl [-- ORDERS [RUNS]]` (default 10,000,000
//! orders, 3 runs each). Times are wall times of whole processes, start-up included, and, for
//! the strict ratio, Freshet's whole process against the sum of DuckDB's three steps timed inside
//! its session (DuckDB's start-up, imports and connection not counted); peak memory
//! is each process's high-water mark of resident memory (`VmHWM`, sampled every 5 ms). The data
//! is generated once into `target/bench-data/`; DuckDB (the PyPI package) is installed once into
//! `target/bench-venv/`. Linux only (it reads `/proc`).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DUCKDB: &str = "duckdb==2.0.1";

/// The three assets, in order: (name, query). The same text runs in Freshet and in DuckDB.
const ASSETS: [(&str, &str); 3] = [
    (
        "clean_orders",
        "SELECT order_id, customer_id, ordered_at, CAST(ordered_at AS DATE) AS order_date, \
         upper(status) AS status, amount, round(amount * 0.19, 2) AS tax, amount >= 100 AS is_large \
         FROM raw_orders WHERE status <> 'cancelled' AND amount > 0",
    ),
    (
        "daily_revenue",
        "SELECT order_date, status, count(*) AS orders, sum(amount) AS revenue, sum(tax) AS tax \
         FROM clean_orders GROUP BY order_date, status",
    ),
    (
        "customer_revenue",
        "SELECT c.customer_id, c.name, c.country, count(*) AS orders, sum(o.amount) AS revenue, \
         min(o.ordered_at) AS first_order, max(o.ordered_at) AS last_order \
         FROM clean_orders o JOIN raw_customers c ON o.customer_id = c.customer_id \
         GROUP BY c.customer_id, c.name, c.country",
    ),
];

#[path = "etl/partitioned.rs"]
mod partitioned;

struct Measured {
    wall: Duration,
    peak_rss_mb: f64,
    stdout: String,
    stderr: String,
}

fn main() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let by_day = args.first().is_some_and(|a| a == "partitioned");
    if by_day {
        args.remove(0);
    }
    let orders: u64 = args
        .first()
        .map_or(Ok(10_000_000), |a| a.replace('_', "").parse())?;
    let runs: usize = args.get(1).map_or(Ok(3), |a| a.parse())?;
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");

    let data = target.join(format!("bench-data/orders-{orders}"));
    if !data.join("customers.parquet").exists() {
        let started = Instant::now();
        freshet_assets::generate::write_shop(&data, orders, 42)?;
        eprintln!(
            "generated {orders} orders in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    let python = duckdb_python(&target)?;
    if by_day {
        return partitioned::run(&target, &data, &python, orders, runs);
    }
    let size = |f: &str| std::fs::metadata(data.join(f)).map_or(0, |m| m.len());
    println!(
        "ETL benchmark: {orders} orders ({:.0} MB zstd Parquet), {} customers, {threads} threads, \
         {runs} runs each",
        size("orders.parquet") as f64 / 1e6,
        freshet_assets::generate::customer_count(orders)
    );

    let freshet = env!("CARGO_BIN_EXE_freshet");
    let mut freshet_runs = Vec::new();
    let mut duck_runs = Vec::new();
    let mut steps = Vec::new();
    let mut unchanged = Vec::new();
    let mut last_project = None;
    for _ in 0..runs {
        let project = tempfile::tempdir_in(&target)?;
        write_project(project.path(), &data)?;
        let run = measure(
            Command::new(freshet)
                .arg("--project")
                .arg(project.path())
                .args(["materialize", "--json"])
                .env("RUST_LOG", "warn"),
        )?;
        steps.push(step_seconds(&run.stdout));
        freshet_runs.push(run);
        unchanged.push(
            measure(
                Command::new(freshet)
                    .arg("--project")
                    .arg(project.path())
                    .arg("materialize")
                    .env("RUST_LOG", "warn"),
            )?
            .wall,
        );

        let out = tempfile::tempdir_in(&target)?;
        duck_runs.push(measure(
            Command::new(&python)
                .arg("-c")
                .arg(duckdb_script(&data, out.path(), threads)),
        )?);
        last_project = Some((project, out));
    }

    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let f_wall = median(freshet_runs.iter().map(|r| r.wall.as_secs_f64()).collect());
    let d_wall = median(duck_runs.iter().map(|r| r.wall.as_secs_f64()).collect());
    let f_rss = median(freshet_runs.iter().map(|r| r.peak_rss_mb).collect());
    let d_rss = median(duck_runs.iter().map(|r| r.peak_rss_mb).collect());
    let duck_steps: Vec<Vec<f64>> = duck_runs
        .iter()
        .map(|r| duck_step_seconds(&r.stdout))
        .collect();
    println!();
    println!(
        "{:<18} {:>10} {:>10} {:>7}",
        "", "freshet", "duckdb", "ratio"
    );
    for (i, (name, _)) in ASSETS.iter().enumerate() {
        let f = median(
            steps
                .iter()
                .map(|s| s.get(i).copied().unwrap_or(f64::NAN))
                .collect(),
        );
        let d = median(
            duck_steps
                .iter()
                .map(|s| s.get(i).copied().unwrap_or(f64::NAN))
                .collect(),
        );
        println!("{name:<18} {f:>9.2}s {d:>9.2}s {:>6.2}x", f / d);
    }
    println!(
        "{:<18} {f_wall:>9.2}s {d_wall:>9.2}s {:>6.2}x   (whole process, start-up included)",
        "total",
        f_wall / d_wall
    );
    // The strict comparison: Freshet's whole process (start-up, observing the sources,
    // planning, the three steps, recording) against only the three steps' time inside one
    // DuckDB session, its process start-up, imports and connection not counted.
    let d_steps = median(duck_steps.iter().map(|s| s.iter().sum()).collect());
    println!(
        "{:<18} {f_wall:>9.2}s {d_steps:>9.2}s {:>6.2}x   (freshet's whole process against \
         duckdb's three steps alone)",
        "strict",
        f_wall / d_steps
    );
    println!("{:<18} {f_rss:>8.0}MB {d_rss:>8.0}MB", "peak memory");
    println!(
        "{:<18} {:>9.0}ms   (materialize again, nothing changed)",
        "no-op",
        median(unchanged.iter().map(|d| d.as_secs_f64() * 1000.0).collect())
    );
    println!(
        "runs (s): freshet {:?}, duckdb {:?}",
        freshet_runs
            .iter()
            .map(|r| round2(r.wall.as_secs_f64()))
            .collect::<Vec<_>>(),
        duck_runs
            .iter()
            .map(|r| round2(r.wall.as_secs_f64()))
            .collect::<Vec<_>>()
    );
    if let Some((project, out)) = last_project {
        compare(&python, project.path(), out.path())?;
    }
    Ok(())
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn write_project(dir: &Path, data: &Path) -> anyhow::Result<()> {
    let mut toml = std::fs::File::create(dir.join("freshet.toml"))?;
    writeln!(toml, "[project]\nname = \"etl_bench\"\n")?;
    for (name, file) in [("raw_orders", "orders"), ("raw_customers", "customers")] {
        writeln!(
            toml,
            "[sources.{name}]\npath = \"{}\"\n",
            data.join(format!("{file}.parquet")).display()
        )?;
    }
    std::fs::create_dir_all(dir.join("sql"))?;
    for (name, query) in ASSETS {
        std::fs::write(dir.join(format!("sql/{name}.sql")), query)?;
    }
    Ok(())
}

fn duckdb_script(data: &Path, out: &Path, threads: usize) -> String {
    let mut s = format!(
        "import json, time, duckdb\n\
         con = duckdb.connect()\n\
         con.execute('SET threads = {threads}')\n\
         con.execute('SET enable_progress_bar = false')\n\
         con.execute(\"CREATE VIEW raw_orders AS SELECT * FROM read_parquet('{d}/orders.parquet')\")\n\
         con.execute(\"CREATE VIEW raw_customers AS SELECT * FROM read_parquet('{d}/customers.parquet')\")\n\
         times = []\n",
        d = data.display()
    );
    for (name, query) in ASSETS {
        let file = out.join(format!("{name}.parquet"));
        s.push_str(&format!(
            "t = time.perf_counter()\n\
             con.execute(\"COPY ({query}) TO '{f}' (FORMAT parquet, COMPRESSION zstd)\")\n\
             times.append(time.perf_counter() - t)\n\
             con.execute(\"CREATE VIEW {name} AS SELECT * FROM read_parquet('{f}')\")\n",
            f = file.display()
        ));
    }
    s.push_str("print(json.dumps(times))\n");
    s
}

/// Each asset's step duration from `materialize --json` (seconds, in [`ASSETS`] order).
fn step_seconds(events: &str) -> Vec<f64> {
    let mut out = vec![f64::NAN; ASSETS.len()];
    for line in events.lines() {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let (Some(key), Some(ms)) = (event["asset"].as_str(), event["duration_ms"].as_f64()) else {
            continue;
        };
        if let Some(i) = ASSETS.iter().position(|(name, _)| *name == key) {
            out[i] = ms / 1000.0;
        }
    }
    out
}

fn duck_step_seconds(stdout: &str) -> Vec<f64> {
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last.trim()).unwrap_or_default()
}

/// Runs `command` to its end: its wall time and its peak resident memory.
fn measure(command: &mut Command) -> anyhow::Result<Measured> {
    let started = Instant::now();
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let status_file = PathBuf::from(format!("/proc/{}/status", child.id()));
    let read = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut out) = pipe {
                let _ = out.read_to_string(&mut text);
            }
            text
        })
    };
    let reader = read(child.stdout.take().map(|p| Box::new(p) as _));
    let errors = read(child.stderr.take().map(|p| Box::new(p) as _));
    let mut peak_kb = 0u64;
    let deadline = started + Duration::from_secs(3600);
    while child.try_wait()?.is_none() {
        if let Some(kb) = std::fs::read_to_string(&status_file).ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        }) {
            peak_kb = peak_kb.max(kb);
        }
        anyhow::ensure!(Instant::now() < deadline, "a run took over an hour");
        std::thread::sleep(Duration::from_millis(5));
    }
    let wall = started.elapsed();
    let status = child.wait()?;
    let stderr = errors.join().unwrap_or_default();
    anyhow::ensure!(status.success(), "{command:?} failed: {stderr}");
    Ok(Measured {
        wall,
        peak_rss_mb: peak_kb as f64 / 1024.0,
        stdout: reader.join().unwrap_or_default(),
        stderr,
    })
}

/// Checks with DuckDB that Freshet's outputs hold DuckDB's results.
fn compare(python: &Path, project: &Path, duck: &Path) -> anyhow::Result<()> {
    let status = Command::new(env!("CARGO_BIN_EXE_freshet"))
        .arg("--project")
        .arg(project)
        .args(["status", "--json"])
        .output()?;
    let status: Vec<serde_json::Value> = serde_json::from_slice(&status.stdout)?;
    let mut script = String::from(
        "import duckdb\ncon = duckdb.connect()\nbad = []\n\
         def differing(a, b):\n\
         \x20   cols = [c[0] for c in con.execute(f'SELECT * FROM {a} LIMIT 0').description]\n\
         \x20   h = lambda c, t: con.execute(f'SELECT sum(hash(\"{c}\")) FROM {t}').fetchone()\n\
         \x20   return [c for c in cols if h(c, a) != h(c, b)]\n",
    );
    for (name, _) in ASSETS {
        let location = status
            .iter()
            .find(|s| s["key"] == name)
            .and_then(|s| s["location"].as_str())
            .ok_or_else(|| anyhow::anyhow!("no location for {name}"))?;
        let folder = url::Url::parse(location)?
            .to_file_path()
            .map_err(|()| anyhow::anyhow!("not a local path: {location}"))?;
        let ours = format!("read_parquet('{}/*.parquet')", folder.display());
        let theirs = format!("read_parquet('{}/{name}.parquet')", duck.display());
        let floats = float_columns(name);
        let exact = if floats.is_empty() {
            "*".to_owned()
        } else {
            format!("* EXCLUDE ({})", floats.join(", "))
        };
        let check = |from: &str| {
            format!(
                "con.execute(\"SELECT count(*), sum(hash(t)) FROM (SELECT {exact} FROM {from}) t\").fetchone()"
            )
        };
        script.push_str(&format!(
            "a = {}\nb = {}\nif a != b: bad.append(('{name}', differing(\"{ours}\", \"{theirs}\")))\n",
            check(&ours),
            check(&theirs),
        ));
        for column in floats {
            script.push_str(&format!(
                "x = con.execute(\"SELECT sum({column}) FROM {ours}\").fetchone()[0]\n\
                 y = con.execute(\"SELECT sum({column}) FROM {theirs}\").fetchone()[0]\n\
                 if abs(x - y) > 1e-5 * abs(y): bad.append(('{name}', '{column}', x, y))\n"
            ));
        }
    }
    script.push_str(
        "print('outputs match DuckDB\\'s (float sums within 1e-5)' if not bad else f'outputs differ: {bad}')\n",
    );
    let out = Command::new(python).arg("-c").arg(script).output()?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}

/// Columns compared by their sum within a relative 1e-5 rather than exactly: sums of floats
/// differ in their last bits with the order of addition, and `round(x, 2)` of a double that is
/// a half-way case in decimal (425.5 * 0.19 = 80.845) rounds up in DataFusion and down in DuckDB
/// (about 0.4% of the rows, by 0.01).
fn float_columns(asset: &str) -> &'static [&'static str] {
    match asset {
        "daily_revenue" => &["revenue", "tax"],
        "customer_revenue" => &["revenue"],
        _ => &["tax"],
    }
}

/// A Python with DuckDB: `target/bench-venv`, made once.
fn duckdb_python(target: &Path) -> anyhow::Result<PathBuf> {
    let venv = target.join("bench-venv");
    let python = venv.join("bin/python");
    let ready = |p: &Path| {
        Command::new(p)
            .args(["-c", "import duckdb"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ready(&python) {
        eprintln!("installing {DUCKDB} into {}", venv.display());
        anyhow::ensure!(
            Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()?
                .success(),
            "cannot create {}",
            venv.display()
        );
        anyhow::ensure!(
            Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check", DUCKDB])
                .status()?
                .success(),
            "cannot install {DUCKDB}"
        );
    }
    Ok(python)
}
