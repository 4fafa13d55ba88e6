//! The control-plane benchmark: how `freshet serve` answers, and how regularly its run's
//! heartbeat is recorded, while its steps keep every core busy.
//!
//! A project of `cores` independent CPU-bound SQL assets (a cross join of ROWS by 1,000 rows,
//! aggregated: nothing read, only computed) is materialized through the API of `freshet serve`
//! with `concurrency = cores`, twice: on an otherwise idle machine, then beside two busy-loop
//! processes. While the run lasts, `GET /api/project` and `GET /api/runs/ID` are asked in turn
//! every 100 ms over loopback (each answer's wall time, from connect to the last byte), and the
//! run's `heartbeat_at` is read from the SQLite store every 100 ms (the largest gap between two
//! recorded beats). Prints p50, p99 and max latency and the largest heartbeat gap per phase.
//!
//! Run with: `cargo bench -p freshet-assets --bench control_plane --profile dev [-- ROWS]`
//! (default 400,000 rows: about 25 s of one core per step in a debug build). The control
//! plane's figures are a debug build's (its slowest); a release build computes each step
//! faster, so give it more rows.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "control-plane-benchmark-token";

fn main() -> anyhow::Result<()> {
    let rows: u64 = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .map_or(Ok(400_000), |a| a.replace('_', "").parse())?;
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    println!("control plane: {cores} steps at once, each a cross join of {rows} x 1,000 rows");
    for busy in [0, 2] {
        let figures = phase(cores, rows, busy)?;
        println!(
            "{} busy loops: {} requests in {:.1} s; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; \
             largest heartbeat gap {:.2} s ({} beats seen)",
            busy,
            figures.latencies.len(),
            figures.run.as_secs_f64(),
            ms(percentile(&figures.latencies, 0.50)),
            ms(percentile(&figures.latencies, 0.99)),
            ms(figures.latencies.iter().copied().max().unwrap_or_default()),
            figures.largest_gap.as_secs_f64(),
            figures.beats,
        );
    }
    Ok(())
}

struct Figures {
    latencies: Vec<Duration>,
    run: Duration,
    largest_gap: Duration,
    beats: usize,
}

fn phase(cores: usize, rows: u64, busy: usize) -> anyhow::Result<Figures> {
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("sql"))?;
    std::fs::write(
        dir.path().join("freshet.toml"),
        format!("[project]\nname = \"bench\"\n[execution]\nconcurrency = {cores}\n"),
    )?;
    for i in 0..cores {
        std::fs::write(
            dir.path().join(format!("sql/heavy_{i}.sql")),
            format!(
                "SELECT count(*) AS n, sum(a.value * b.value + {i}) AS s \
                 FROM generate_series(1, {rows}) a CROSS JOIN generate_series(1, 1000) b"
            ),
        )?;
    }
    let server = Server::start(dir.path())?;
    let _busy = Busy(
        (0..busy)
            .map(|_| {
                Command::new("sh")
                    .args(["-c", "while :; do :; done"])
                    .spawn()
            })
            .collect::<Result<_, _>>()?,
    );
    let (status, body) = server.request("POST", "/api/runs", "{}")?;
    anyhow::ensure!(status == 202, "POST /api/runs: {status} {body}");
    let accepted: serde_json::Value = serde_json::from_str(&body)?;
    let run_id = accepted["run_id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no run_id in {body}"))?
        .to_owned();
    let run_path = format!("/api/runs/{run_id}");
    let database = dir.path().join(".freshet/freshet.db");

    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut beats: Vec<i64> = Vec::new();
    let deadline = started + Duration::from_secs(1800);
    let mut ask_run = false;
    loop {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the run did not end in 30 minutes"
        );
        let path = if ask_run {
            run_path.as_str()
        } else {
            "/api/project"
        };
        ask_run = !ask_run;
        let asked = Instant::now();
        let (status, body) = server.request("GET", path, "")?;
        latencies.push(asked.elapsed());
        anyhow::ensure!(status == 200, "GET {path}: {status} {body}");
        if let Some(beat) = heartbeat(&database, &run_id)
            && beats.last() != Some(&beat)
        {
            beats.push(beat);
        }
        if path == run_path {
            let page: serde_json::Value = serde_json::from_str(&body)?;
            let state = page["run"]["status"].as_str().unwrap_or_default();
            if state != "queued" && state != "running" {
                anyhow::ensure!(state == "succeeded", "the run ended {state}: {body}");
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let largest_gap = beats
        .windows(2)
        .map(|w| Duration::from_micros(u64::try_from(w[1] - w[0]).unwrap_or(0)))
        .max()
        .unwrap_or_default();
    Ok(Figures {
        latencies,
        run: started.elapsed(),
        largest_gap,
        beats: beats.len(),
    })
}

/// The run's recorded heartbeat (epoch microseconds), read with the `sqlite3` shell's
/// equivalent: a read-only connection of Python's sqlite3 module, so the benchmark adds no
/// writer and no lock of its own kind.
fn heartbeat(database: &std::path::Path, run_id: &str) -> Option<i64> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys\n\
             c = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True, timeout=1)\n\
             r = c.execute('SELECT heartbeat_at FROM runs WHERE id = ?', (sys.argv[2],)).fetchone()\n\
             print(r[0] if r and r[0] is not None else '')",
        ])
        .arg(database)
        .arg(run_id)
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn percentile(values: &[Duration], p: f64) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(at).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Busy(Vec<Child>);

impl Drop for Busy {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(project: &std::path::Path) -> anyhow::Result<Self> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_freshet"))
            .arg("--project")
            .arg(project)
            .args(["serve", "--addr", "127.0.0.1:0", "--no-automation"])
            .env("FRESHET_TOKEN", TOKEN)
            .env("RUST_LOG", "warn")
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| anyhow::anyhow!("stderr"))?;
        let mut lines = BufReader::new(stderr).lines();
        let addr = loop {
            let line = lines
                .next()
                .ok_or_else(|| anyhow::anyhow!("serve ended before it listened"))??;
            if let Some(rest) = line.strip_prefix("freshet: serving http://") {
                break rest.split('/').next().unwrap_or_default().to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Ok(Self { child, addr })
    }

    fn request(&self, method: &str, path: &str, body: &str) -> anyhow::Result<(u16, String)> {
        let mut stream = std::net::TcpStream::connect(&self.addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
             Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_owned();
        Ok((status, body))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
