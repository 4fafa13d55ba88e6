//! The control plane while steps keep every core busy: a server answers every request, no
//! other process takes its run for dead, a cancel stops a computing step at once, and a closed
//! stdout ends no run.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{TempProject, spawn_materialize, stderr_and_exit, stderr_lines, wait_exit};

/// The machine's cores.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// Processes that keep a core busy each until dropped.
struct BusyLoops(Vec<Child>);

impl BusyLoops {
    fn start(n: usize) -> Self {
        Self(
            (0..n)
                .map(|_| {
                    Command::new("sh")
                        .args(["-c", "while :; do :; done"])
                        .spawn()
                        .expect("start a busy loop")
                })
                .collect(),
        )
    }
}

impl Drop for BusyLoops {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A project of `steps` independent assets, each a CPU-bound aggregate over a cross join of
/// `rows` by 1,000 rows (no input, nothing to read: the step only computes), run `steps` at
/// once.
fn cpu_project(steps: usize, rows: u64) -> TempProject {
    let project = TempProject::with_files(&[(
        "freshet.toml",
        &format!("[project]\nname = \"t\"\n[execution]\nconcurrency = {steps}\n"),
    )]);
    for i in 0..steps {
        project.write(
            &format!("sql/heavy_{i}.sql"),
            &format!(
                "SELECT count(*) AS n, sum(a.value * b.value + {i}) AS s \
                 FROM generate_series(1, {rows}) a CROSS JOIN generate_series(1, 1000) b"
            ),
        );
    }
    project
}

/// `freshet serve` on a loopback port with a known token.
struct Served {
    child: Child,
    addr: String,
}

const TOKEN: &str = "control-plane-test-token";

impl Served {
    fn start(project: &TempProject) -> Self {
        let mut child = project
            .command()
            .args(["serve", "--addr", "127.0.0.1:0", "--no-automation"])
            .env("FRESHET_TOKEN", TOKEN)
            .env("RUST_LOG", "warn")
            .stderr(Stdio::piped())
            .spawn()
            .expect("start freshet serve");
        let rx = stderr_lines(&mut child);
        let mut addr = None;
        while let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) {
            if let Some(rest) = line.strip_prefix("freshet: serving http://") {
                addr = rest.split('/').next().map(str::to_owned);
                break;
            }
        }
        let addr = addr.expect("serve said where it listens");
        std::thread::spawn(move || {
            while let Ok(line) = rx.recv() {
                eprintln!("serve: {line}");
            }
        });
        Self { child, addr }
    }

    /// One request; its status and JSON body, or why it failed. Bounded by `patience`.
    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        patience: Duration,
    ) -> Result<(u16, Value), String> {
        let mut stream = std::net::TcpStream::connect(&self.addr).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(patience))
            .map_err(|e| e.to_string())?;
        let body = body.unwrap_or("");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
             Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .map_err(|e| e.to_string())?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let text = String::from_utf8_lossy(&response);
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("{method} {path}: no status in {text:?}"))?;
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        Ok((status, serde_json::from_str(body).unwrap_or(Value::Null)))
    }

    fn get(&self, path: &str) -> Value {
        let (status, body) = self
            .request("GET", path, None, Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How long each step of the loaded tests computes at the least, and the rows that take it
/// here: a debug build computed a cross join of 400,000 by 1,000 rows in 25 s on one core of
/// a 2-core machine, so with the cores shared each step runs for well over 20 s.
const HEAVY_ROWS: u64 = 400_000;

#[test]
fn a_server_whose_steps_fill_every_core_answers_and_its_run_is_never_taken_for_dead() {
    let steps = cores();
    let project = cpu_project(steps, HEAVY_ROWS);
    let served = Served::start(&project);
    let _busy = BusyLoops::start(2);
    let (status, accepted) = served
        .request("POST", "/api/runs", Some("{}"), Duration::from_secs(30))
        .expect("request a run");
    assert_eq!(status, 202, "{accepted}");
    let run_id = accepted["run_id"].as_str().expect("run_id").to_owned();
    let run_path = format!("/api/runs/{run_id}");

    // Sampled every 500 ms until the run ends (at most 10 minutes): every request answers,
    // each within 5 s, and meanwhile other commands on the same store leave the run running.
    let patience = Duration::from_secs(5);
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut samples = 0;
    let mut others_ran = 0;
    let ended = loop {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the run did not end within 10 minutes"
        );
        for path in ["/api/project", run_path.as_str()] {
            let asked = Instant::now();
            let answer = served.request("GET", path, None, patience);
            let took = asked.elapsed();
            slowest = slowest.max(took);
            match answer {
                Ok((200, _)) => {}
                other => panic!("GET {path} after {took:?}: {other:?}"),
            }
            samples += 1;
        }
        let run = served.get(&run_path);
        let status = run["run"]["status"].as_str().unwrap_or_default().to_owned();
        if status != "running" && status != "queued" {
            break run;
        }
        // A second process reading and observing while the steps compute: it must not judge
        // the server's run dead.
        if started.elapsed() > Duration::from_secs(5) && others_ran < 2 {
            let command = if others_ran == 0 { "status" } else { "observe" };
            let out = project.run(&[command]);
            assert!(
                !out.stderr.contains("process that died"),
                "`freshet {command}` took the live run for dead: {}",
                out.stderr
            );
            others_ran += 1;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    eprintln!(
        "{samples} requests while {steps} steps ran for {:?}; the slowest took {slowest:?}",
        started.elapsed()
    );
    assert_eq!(
        others_ran, 2,
        "the run ended before other commands could run beside it"
    );
    assert_eq!(ended["run"]["status"], "succeeded", "{ended}");
    let states: Vec<&str> = ended["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s["state"].as_str())
        .collect();
    assert_eq!(states, vec!["materialized"; steps], "{ended}");
}

#[test]
fn cancel_stops_a_computing_step_at_once_and_the_records_agree() {
    let steps = cores();
    let project = cpu_project(steps, HEAVY_ROWS * 10);
    let _busy = BusyLoops::start(2);
    let mut child = spawn_materialize(&project);
    let rx = stderr_lines(&mut child);
    let mut run_id = None;
    let mut computing = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while computing < steps && Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(5)) else {
            continue;
        };
        if let Some(rest) = line.strip_prefix("run ")
            && let Some((id, _)) = rest.split_once(':')
        {
            run_id = Some(id.to_owned());
        }
        if line.contains("heavy_") && line.contains("...") {
            computing += 1;
        }
    }
    let run_id = run_id.expect("the run said its id");
    // Let the steps compute for a while, so the cancel meets busy CPU workers.
    std::thread::sleep(Duration::from_secs(3));

    let asked = Instant::now();
    let out = project.ok(&["cancel", &run_id]);
    let took = asked.elapsed();
    assert!(
        out.stdout.contains(&format!("run {run_id} cancelled")),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    // From the request, as the store recorded it, to the run's recorded end.
    let micros = project.store_scalar("SELECT finished_at - cancel_requested_at FROM runs");
    let cancelled_after = Duration::from_micros(u64::try_from(micros).expect("ended after"));
    eprintln!(
        "freshet cancel answered in {took:?}; the run ended {cancelled_after:?} after the request"
    );
    assert!(
        cancelled_after < Duration::from_secs(2),
        "the run was cancelled {cancelled_after:?} after the request"
    );
    let status = wait_exit(&mut child, Duration::from_secs(30));
    let code = status.expect("the cancelled process exits").code();
    assert_eq!(code, Some(130));

    let shown = project.ok(&["runs", &run_id, "--json"]);
    let shown: Value = serde_json::from_str(&shown.stdout).expect("JSON");
    assert_eq!(shown["run"]["status"], "cancelled", "{shown}");
    for step in shown["steps"].as_array().expect("steps") {
        assert_eq!(step["state"], "cancelled", "{shown}");
    }
    let log: Vec<String> = shown["logs"]
        .as_array()
        .expect("logs")
        .iter()
        .filter_map(|l| l["message"].as_str().map(str::to_owned))
        .collect();
    let last = log.last().expect("a log");
    assert!(last.starts_with("run cancelled:"), "{log:#?}");
    assert!(
        log.iter().all(|l| !l.contains("run failed")),
        "the log contradicts the run: {log:#?}"
    );
    // Nothing of the stopped steps stays behind.
    assert!(
        project.output_files().is_empty(),
        "{:?}",
        project.output_files()
    );
}

#[test]
fn a_closed_stdout_ends_no_run() {
    let project = TempProject::with_files(&[
        ("freshet.toml", "[project]\nname = \"t\"\n"),
        ("sql/a.sql", "SELECT 1 AS n"),
        // Long enough that the run is still going when the reader has gone.
        (
            "sql/b.sql",
            "SELECT max(a.n + s.value) AS n FROM a CROSS JOIN generate_series(1, 20000000) s",
        ),
        ("sql/c.sql", "SELECT n + 1 AS n FROM b"),
    ]);
    // `freshet materialize --json | head -n 1`: the reader takes one line and goes.
    let mut child = project
        .command()
        .args(["materialize", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start freshet materialize");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("a line");
    // The pipe's reading end is dropped here, as `head` exits.
    let (status, stderr) = stderr_and_exit(&mut child);
    assert!(status.success(), "{status:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let runs: Vec<Value> =
        serde_json::from_str(&project.ok(&["runs", "--json"]).stdout).expect("runs --json");
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["status"], "succeeded", "{runs:?}");

    // A preview into a closed pipe stops quietly too.
    let mut preview = project
        .command()
        .args(["preview", "c"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start freshet preview");
    drop(preview.stdout.take());
    let (status, stderr) = stderr_and_exit(&mut preview);
    assert!(status.success(), "{status:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
