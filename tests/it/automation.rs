//! Automation with the real binary: `freshet daemon` keeps eager assets fresh as their source
//! changes, runs a schedule every minute, takes over after being killed mid-run, and sends
//! alerts to a webhook receiver on loopback.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{TempProject, stderr_lines};

/// `freshet daemon` on a project, its log collected; killed when dropped.
struct Daemon {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    fn start(project: &TempProject) -> Self {
        let mut child = project
            .command()
            .arg("daemon")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start freshet daemon");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().expect("log").push(line);
            }
        });
        Self { child, log }
    }

    fn log(&self) -> String {
        self.log.lock().expect("log").join("\n")
    }

    /// SIGTERM, then waits (bounded) for the exit.
    fn terminate(mut self) -> Option<ExitStatus> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(45);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it holds or `patience` ran out; whether it held.
fn wait_until(patience: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    check()
}

fn runs(project: &TempProject) -> Vec<Value> {
    let out = project.ok(&["runs", "--json"]);
    serde_json::from_str(&out.stdout).expect("runs --json is JSON")
}

fn fresh(project: &TempProject, keys: &[&str]) -> bool {
    let status = project.status();
    keys.iter()
        .all(|k| status.get(*k).is_some_and(|s| s["status"] == "fresh"))
}

/// An eager asset whose file does not load is not run by automation (no failed runs, no
/// failure on it), while the rest is kept fresh.
#[test]
fn the_daemon_runs_around_an_asset_whose_file_does_not_load() {
    let project = TempProject::with_files(&[
        (
            "freshet.toml",
            "[project]\nname = \"t\"\n[automation]\ndefault = \"eager\"\n[sources.raw]\npath = \"raw.csv\"\n",
        ),
        ("raw.csv", "n\n1\n2\n"),
        ("sql/clean.sql", "SELECT n * 10 AS m FROM raw"),
        ("sql/broken.sql", "SELECT m FRM clean"),
    ]);
    let daemon = Daemon::start(&project);
    assert!(
        wait_until(Duration::from_secs(30), || fresh(&project, &["clean"])),
        "the daemon never materialized clean:\n{}",
        daemon.log()
    );
    project.write("raw.csv", "n\n1\n2\n3\n");
    assert!(
        wait_until(Duration::from_secs(10), || project
            .ok(&["preview", "clean"])
            .stdout
            .contains("| 30 |")),
        "{}",
        daemon.log()
    );
    drop(daemon);
    let listed = runs(&project);
    assert!(!listed.is_empty());
    assert!(
        listed.iter().all(|r| r["status"] == "succeeded"),
        "{listed:?}"
    );
    let status = project.status();
    assert_eq!(status["broken"]["last_failure"], serde_json::Value::Null);
    assert!(
        status["broken"]["load_error"]
            .as_str()
            .is_some_and(|e| e.starts_with("sql/broken.sql: invalid SQL")),
        "{}",
        status["broken"]
    );
}

#[test]
fn the_daemon_keeps_eager_assets_fresh_as_their_source_changes() {
    let project = TempProject::with_files(&[
        (
            "freshet.toml",
            "[project]\nname = \"t\"\n[sources.raw]\npath = \"raw.csv\"\n",
        ),
        ("raw.csv", "n\n1\n2\n"),
        (
            "sql/clean.sql",
            "-- @automation: eager\nSELECT n * 10 AS m FROM raw",
        ),
        (
            "sql/total.sql",
            "-- @automation: eager\nSELECT count(*) AS c, sum(m) AS s FROM clean",
        ),
    ]);
    let daemon = Daemon::start(&project);
    assert!(
        wait_until(Duration::from_secs(30), || fresh(
            &project,
            &["clean", "total"]
        )),
        "the daemon never materialized the missing assets:\n{}",
        daemon.log()
    );

    // New source data, and no command: both follow within 5 s.
    let appended = Instant::now();
    project.write("raw.csv", "n\n1\n2\n3\n");
    let followed = wait_until(Duration::from_secs(5), || {
        project
            .ok(&["preview", "total"])
            .stdout
            .contains("| 3 | 60 |")
            && fresh(&project, &["clean", "total"])
    });
    assert!(
        followed,
        "not fresh {:?} after appending a row:\n{}",
        appended.elapsed(),
        daemon.log()
    );

    let listed = runs(&project);
    assert!(listed.len() >= 2, "{listed:?}");
    assert!(
        listed
            .iter()
            .all(|r| r["triggered_by"] == "automation" && r["status"] == "succeeded"),
        "{listed:#?}"
    );
    // Why, in words, for each asset.
    let out = project.ok(&["automation", "--json"]);
    let report: Value = serde_json::from_str(&out.stdout).expect("automation --json");
    let reason = |asset: &str| {
        report["assets"]
            .as_array()
            .and_then(|a| a.iter().find(|d| d["asset"] == asset))
            .map(|d| d["reason"].as_str().unwrap_or_default().to_owned())
            .unwrap_or_default()
    };
    assert!(
        [
            "requested: input raw has a new data version",
            "not requested: fresh"
        ]
        .contains(&reason("clean").as_str()),
        "{report:#}"
    );
    assert!(
        report["evaluation"]["evaluated_at"].is_string(),
        "{report:#}"
    );
    let text = project.ok(&["automation"]).stdout;
    assert!(text.contains("clean  eager"), "{text}");

    let status = daemon.terminate().expect("the daemon stops on SIGTERM");
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_one_minute_schedule_runs_within_the_minute() {
    let project = TempProject::with_files(&[
        (
            "freshet.toml",
            "[project]\nname = \"t\"\n[schedules.minutely]\ncron = \"* * * * *\"\n\
             selection = \"report\"\nstale_only = false\n",
        ),
        ("sql/report.sql", "SELECT 1 AS x"),
    ]);
    let daemon = Daemon::start(&project);
    let scheduled = |project: &TempProject| {
        runs(project)
            .into_iter()
            .find(|r| r["triggered_by"] == "schedule minutely" && r["status"] == "succeeded")
    };
    // A new schedule waits for its next tick: at most a minute away.
    assert!(
        wait_until(Duration::from_secs(75), || scheduled(&project).is_some()),
        "no scheduled run:\n{}",
        daemon.log()
    );
    assert!(fresh(&project, &["report"]));
    let out = project.ok(&["automation", "--json"]);
    let report: Value = serde_json::from_str(&out.stdout).expect("automation --json");
    let schedule = &report["schedules"][0];
    assert_eq!(schedule["name"], "minutely");
    assert!(schedule["last_tick"].is_string(), "{report:#}");
    assert!(schedule["next_tick"].is_string(), "{report:#}");
    assert_eq!(
        schedule["last_run_id"],
        scheduled(&project).expect("run")["id"]
    );
}

#[test]
fn a_daemon_killed_mid_run_is_taken_over_after_a_restart() {
    let project = TempProject::with_files(&[
        (
            "freshet.toml",
            "[project]\nname = \"t\"\n[automation]\ndefault = \"eager\"\n",
        ),
        ("sql/seed.sql", "SELECT 1 AS n"),
        (
            "sql/big.sql",
            "SELECT sum(value * n) AS s FROM seed CROSS JOIN generate_series(1, 100000000)",
        ),
    ]);
    let mut daemon = Daemon::start(&project);
    // Wait until big is being computed, then kill the daemon outright.
    let running_big = |project: &TempProject| {
        runs(project).into_iter().find_map(|r| {
            let id = r["id"].as_str()?.to_owned();
            let shown = project.ok(&["runs", &id, "--json"]);
            let shown: Value = serde_json::from_str(&shown.stdout).ok()?;
            let big = shown["steps"]
                .as_array()?
                .iter()
                .any(|s| s["asset"] == "big" && s["state"] == "running");
            big.then_some(id)
        })
    };
    let mut killed_run = None;
    assert!(
        wait_until(Duration::from_secs(30), || {
            killed_run = running_big(&project);
            killed_run.is_some()
        }),
        "big never started:\n{}",
        daemon.log()
    );
    daemon.child.kill().expect("kill -9");
    daemon.child.wait().expect("wait");
    let killed_run = killed_run.expect("run");

    // The restarted daemon marks the run failed and requests big again, which ends fresh.
    let restarted = Daemon::start(&project);
    assert!(
        wait_until(Duration::from_secs(90), || fresh(
            &project,
            &["seed", "big"]
        )),
        "big never became fresh after the restart:\n{}",
        restarted.log()
    );
    let listed = runs(&project);
    let killed = listed
        .iter()
        .find(|r| r["id"] == killed_run.as_str())
        .expect("the killed run is listed");
    assert_eq!(killed["status"], "failed", "{killed}");
    assert_eq!(killed["error"], "process died", "{killed}");
    assert!(
        listed.iter().any(|r| r["id"] != killed_run.as_str()
            && r["triggered_by"] == "automation"
            && r["status"] == "succeeded"),
        "{listed:#?}"
    );
    assert!(restarted.terminate().is_some_and(|s| s.success()));
}

/// A webhook receiver on loopback: answers 200 to every POST and keeps the JSON bodies.
struct Receiver {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let kept = bodies.clone();
        listener.set_nonblocking(true).expect("nonblocking");
        std::thread::spawn(move || {
            // Bounded: it stops taking requests after two minutes.
            let deadline = Instant::now() + Duration::from_secs(120);
            while Instant::now() < deadline {
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                if let Some(body) = read_request(&mut stream) {
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    );
                    if let Ok(json) = serde_json::from_slice(&body) {
                        kept.lock().expect("bodies").push(json);
                    }
                }
            }
        });
        Self { url, bodies }
    }

    fn events(&self) -> Vec<Value> {
        self.bodies.lock().expect("bodies").clone()
    }
}

/// Reads one HTTP request and returns its body.
fn read_request(stream: &mut std::net::TcpStream) -> Option<Vec<u8>> {
    let mut reader = BufReader::new(stream);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length.min(1 << 20)];
    reader.read_exact(&mut body).ok()?;
    Some(body)
}

#[test]
fn alerts_reach_a_webhook_on_failure_and_recovery_and_a_dead_one_delays_nothing() {
    let receiver = Receiver::start();
    // A port nothing listens on.
    let dead = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}/hook", listener.local_addr().expect("addr"))
    };
    let toml = format!(
        "[project]\nname = \"shop\"\n[sources.raw]\npath = \"raw.csv\"\n\
         [alerts]\nwebhooks = [\"{dead}\", \"{}\"]\nweb_url = \"http://127.0.0.1:9/\"\ntimeout = \"1s\"\n",
        receiver.url
    );
    let project = TempProject::with_files(&[
        ("freshet.toml", &toml),
        ("raw.csv", "n\n0\n"),
        (
            "sql/ratio.sql",
            "-- @automation: eager\nSELECT 10 / n AS r FROM raw",
        ),
    ]);
    let daemon = Daemon::start(&project);
    let event = |name: &str| receiver.events().into_iter().find(|e| e["event"] == name);
    assert!(
        wait_until(Duration::from_secs(30), || event("run_failed").is_some()),
        "no failure alert; got {:?}:\n{}",
        receiver.events(),
        daemon.log()
    );
    let failed = event("run_failed").expect("alert");
    let run_id = failed["run_id"].as_str().expect("run_id").to_owned();
    assert_eq!(failed["version"], 1);
    assert_eq!(failed["project"], "shop");
    assert_eq!(failed["asset"], "ratio");
    assert_eq!(failed["assets"], serde_json::json!(["ratio"]));
    assert_eq!(failed["error"], "failed: ratio");
    assert_eq!(failed["url"], format!("http://127.0.0.1:9/#/runs/{run_id}"));
    assert!(
        failed["summary"]
            .as_str()
            .is_some_and(|s| s.starts_with(&format!("run {run_id} failed"))),
        "{failed}"
    );
    assert!(failed["at"].is_string());

    // Fixed data: the asset is requested again, succeeds, and recovers.
    project.write("raw.csv", "n\n2\n");
    assert!(
        wait_until(Duration::from_secs(30), || event("recovered").is_some()),
        "no recovery alert; got {:?}:\n{}",
        receiver.events(),
        daemon.log()
    );
    let recovered = event("recovered").expect("alert");
    assert_eq!(recovered["asset"], "ratio");
    assert_eq!(recovered["error"], Value::Null);
    assert!(project.ok(&["preview", "ratio"]).stdout.contains("| 5 |"));
    // The dead webhook was tried and logged by host, never by URL.
    assert!(
        wait_until(Duration::from_secs(10), || daemon
            .log()
            .contains("alert not delivered")),
        "{}",
        daemon.log()
    );
    assert!(!daemon.log().contains(&dead), "{}", daemon.log());
    assert!(daemon.terminate().is_some_and(|s| s.success()));
}

/// `freshet serve` on a free loopback port, with its address.
struct Served {
    child: Child,
    addr: String,
}

impl Served {
    fn start(project: &TempProject) -> Self {
        let mut child = project
            .command()
            .args(["serve", "--addr", "127.0.0.1:0"])
            .env("RUST_LOG", "warn")
            .env("FRESHET_TOKEN", "reload-test-token-0123456789")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start freshet serve");
        let rx = stderr_lines(&mut child);
        let mut addr = None;
        while let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) {
            if let Some(rest) = line.strip_prefix("freshet: serving http://") {
                addr = rest.split('/').next().map(str::to_owned);
                break;
            }
        }
        let addr = addr.expect("serve said where it listens");
        // Keep draining stderr so the server never blocks on it.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        Self { child, addr }
    }

    /// GET `path`, as JSON.
    fn get(&self, path: &str) -> Value {
        let mut stream = std::net::TcpStream::connect(&self.addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .expect("send");
        let mut response = Vec::new();
        stream.read_to_end(&mut response).expect("read");
        let text = String::from_utf8_lossy(&response);
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: {e}: {text}"))
    }

    fn nodes(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.get("/api/lineage")["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .filter_map(|n| n["key"].as_str().map(str::to_owned))
            .collect();
        keys.sort();
        keys
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn serve_follows_edits_to_the_project_and_keeps_the_last_good_one_when_an_edit_breaks_it() {
    let project = TempProject::with_files(&[
        ("freshet.toml", "[project]\nname = \"t\"\n"),
        ("sql/a.sql", "SELECT 1 AS x"),
    ]);
    let served = Served::start(&project);
    assert_eq!(served.nodes(), ["a"]);

    // A new SQL file: the graph has it, with no restart.
    project.write("sql/b.sql", "SELECT x + 1 AS y FROM a");
    assert!(
        wait_until(Duration::from_secs(10), || served.nodes() == ["a", "b"]),
        "{:?}",
        served.nodes()
    );
    assert_eq!(served.get("/api/project")["load_error"], Value::Null);

    // A broken SQL file: the rest loads, and that asset says why.
    project.write("sql/c.sql", "SELEC nothing FROM a");
    assert!(
        wait_until(Duration::from_secs(10), || served.nodes()
            == ["a", "b", "c"]),
        "{:?}",
        served.nodes()
    );
    let c = served.get("/api/assets/c");
    assert_eq!(c["run_state"], "broken", "{c}");
    let error = c["load_error"].as_str().unwrap_or_default();
    assert!(error.starts_with("sql/c.sql: "), "{error}");
    assert_eq!(served.get("/api/project")["load_error"], Value::Null);

    // A broken freshet.toml: the last good project keeps serving, and says why.
    let toml = project.read("freshet.toml");
    project.write("freshet.toml", "[project\n");
    assert!(
        wait_until(Duration::from_secs(10), || {
            served.get("/api/project")["load_error"].is_string()
        }),
        "{}",
        served.get("/api/project")
    );
    let error = served.get("/api/project")["load_error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(error.contains("freshet.toml: line 1"), "{error}");
    assert_eq!(served.nodes(), ["a", "b", "c"]);

    // Fixed: loaded again.
    project.write("freshet.toml", &toml);
    project.write("sql/c.sql", "SELECT y * 2 AS z FROM b");
    assert!(
        wait_until(Duration::from_secs(10), || {
            served.get("/api/assets/c")["load_error"].is_null()
                && served.get("/api/project")["load_error"].is_null()
        }),
        "{}",
        served.get("/api/assets/c")
    );
    assert_eq!(served.nodes(), ["a", "b", "c"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_sensor_requests_runs_with_its_cursor_and_a_broken_one_stops_nothing() {
    use freshet_core::freshness::SystemClock;
    use freshet_core::sensor::{RustSensor, SensorOutput, SensorRequest};
    use freshet_core::store::RunQuery;
    use freshet_core::{Catalogue, Catalogues, Executor, Project, Store};
    use std::sync::atomic::{AtomicUsize, Ordering};

    let project = TempProject::with_files(&[
        (
            "freshet.toml",
            "[project]\nname = \"t\"\ncatalogues = [\"sensing\"]\n",
        ),
        ("sql/report.sql", "SELECT 1 AS x"),
    ]);
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let catalogue = Catalogue::new("sensing")
        .sensor(
            RustSensor::new("broken")
                .interval(Duration::from_secs(1))
                .evaluate(|_| async { panic!("a bug in the sensor") }),
        )
        .sensor(
            RustSensor::new("drop_box")
                .interval(Duration::from_secs(1))
                .evaluate(move |ctx| {
                    let calls = counted.clone();
                    async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        let mut out = SensorOutput::default();
                        // New files once; then the cursor says they were seen.
                        if ctx.cursor.as_deref() != Some("batch-1") {
                            out.requests.push(SensorRequest::all("report"));
                            out.cursor = Some("batch-1".to_owned());
                        }
                        Ok(out)
                    }
                }),
        );
    let loaded = Project::load(
        project.path(),
        &Catalogues::new().with(catalogue),
        &project.overrides(),
    )
    .expect("project loads");
    assert_eq!(loaded.sensors().len(), 2);
    let store = Store::open(loaded.database_url()).await.expect("store");
    let executor = Executor::new(loaded.clone(), store.clone()).expect("executor");
    let state = freshet_server::serve::AppState::new(
        loaded,
        store.clone(),
        executor,
        Arc::new(SystemClock),
        "sensor-test-token-0123456789".to_owned(),
        true,
    );
    let automation = state.spawn_automation();
    let sensed_runs = || async {
        store
            .runs(&RunQuery {
                limit: 100,
                ..RunQuery::default()
            })
            .await
            .expect("runs")
            .items
            .into_iter()
            .filter(|r| r.triggered_by == "sensor drop_box")
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while sensed_runs().await.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Called again since (every second), but its cursor says the batch was handled.
    let called = calls.load(Ordering::SeqCst);
    while calls.load(Ordering::SeqCst) < called + 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    state.stop();
    let _ = automation.await;
    state.finish_runs(Duration::from_secs(10)).await;
    let runs = sensed_runs().await;
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0].status.as_str(), "succeeded");
    assert!(calls.load(Ordering::SeqCst) >= called + 2);
    let cursors = store.sensor_cursors().await.expect("cursors");
    assert_eq!(cursors["drop_box"].0.as_deref(), Some("batch-1"));
    assert!(!cursors.contains_key("broken"));
}

#[test]
fn alerts_reach_a_webhook_when_freshness_fails_and_when_it_passes_again() {
    let receiver = Receiver::start();
    let toml = format!(
        "[project]\nname = \"shop\"\n[alerts]\nwebhooks = [\"{}\"]\nformat = \"slack\"\n",
        receiver.url
    );
    let project = TempProject::with_files(&[
        ("freshet.toml", &toml),
        ("sql/mart.sql", "-- @freshness: max_age=3s\nSELECT 1 AS x"),
    ]);
    let daemon = Daemon::start(&project);
    project.ok(&["materialize"]);
    let event = |name: &str| receiver.events().into_iter().find(|e| e["event"] == name);
    // Three seconds later its policy fails, with nothing asked.
    assert!(
        wait_until(Duration::from_secs(20), || event("freshness_failed")
            .is_some()),
        "no freshness alert; got {:?}:\n{}",
        receiver.events(),
        daemon.log()
    );
    let failed = event("freshness_failed").expect("alert");
    assert_eq!(failed["asset"], "mart");
    assert_eq!(failed["run_id"], Value::Null);
    assert_eq!(failed["error"], "freshness max_age=3s fails");
    assert_eq!(
        failed["text"],
        "mart is overdue: freshness max_age=3s fails"
    );
    project.ok(&["materialize", "mart"]);
    assert!(
        wait_until(Duration::from_secs(20), || event("freshness_recovered")
            .is_some()),
        "no recovery alert; got {:?}:\n{}",
        receiver.events(),
        daemon.log()
    );
    assert_eq!(
        event("freshness_recovered").expect("alert")["asset"],
        "mart"
    );
}

#[test]
fn of_two_daemons_on_one_store_one_runs_automation_and_the_other_waits() {
    let project = TempProject::with_files(&[
        (
            "freshet.toml",
            "[project]\nname = \"t\"\n[automation]\ndefault = \"eager\"\n[sources.raw]\npath = \"raw.csv\"\n",
        ),
        ("raw.csv", "n\n1\n"),
        ("sql/clean.sql", "SELECT n * 10 AS m FROM raw"),
    ]);
    let first = Daemon::start(&project);
    assert!(
        wait_until(Duration::from_secs(30), || fresh(&project, &["clean"])),
        "{}",
        first.log()
    );
    let second = Daemon::start(&project);
    assert!(
        wait_until(Duration::from_secs(15), || second
            .log()
            .contains("automation on this store runs in another process")),
        "{}",
        second.log()
    );
    project.write("raw.csv", "n\n1\n2\n");
    assert!(
        wait_until(Duration::from_secs(10), || project
            .ok(&["preview", "clean"])
            .stdout
            .contains("| 20 |")),
        "{}\n{}",
        first.log(),
        second.log()
    );
    // Give the waiting daemon time to ask too, if it were to.
    std::thread::sleep(Duration::from_secs(2));
    let listed = runs(&project);
    assert_eq!(listed.len(), 2, "one run per change: {listed:#?}");

    // The first one stops: the second takes over and follows the next change.
    assert!(first.terminate().is_some_and(|s| s.success()));
    project.write("raw.csv", "n\n1\n2\n3\n");
    assert!(
        wait_until(Duration::from_secs(30), || project
            .ok(&["preview", "clean"])
            .stdout
            .contains("| 30 |")),
        "{}",
        second.log()
    );
    assert!(second.terminate().is_some_and(|s| s.success()));
}

/// Two daemons on one store (the suite's PostgreSQL database in its PostgreSQL pass) while the
/// source changes 900 times or more (until automation was evaluated 200 times): each of its
/// versions is materialized downstream at most once,
/// whichever daemon runs automation; the one that does is killed half-way (SIGKILL, while one of
/// its runs is running if it can be caught so), and the other takes over and follows the changes
/// to the last one.
#[test]
fn two_daemons_materialize_each_change_once_and_one_takes_over_when_the_other_is_killed() {
    let project = TempProject::with_files(&[
        (
            "freshet.toml",
            "[project]\nname = \"t\"\n[automation]\ndefault = \"eager\"\n[sources.raw]\npath = \"raw.csv\"\n",
        ),
        ("raw.csv", "n\n1\n"),
        (
            "sql/clean.sql",
            "SELECT count(*) AS c, max(n) AS top FROM raw",
        ),
        // Long enough that the kill finds a run running.
        (
            "sql/slow.sql",
            "SELECT count(*) AS k FROM clean CROSS JOIN generate_series(1, 5000000)",
        ),
    ]);
    let owns = "this process runs automation on the store";
    let mut first = Daemon::start(&project);
    assert!(
        wait_until(Duration::from_secs(30), || first.log().contains(owns)),
        "{}",
        first.log()
    );
    let second = Daemon::start(&project);
    assert!(
        wait_until(Duration::from_secs(15), || second
            .log()
            .contains("automation on this store runs in another process")),
        "{}",
        second.log()
    );
    let csv = |rows: usize| {
        let mut text = "n\n".to_owned();
        for n in 1..=rows {
            text.push_str(&format!("{n}\n"));
        }
        text
    };
    const CHANGES: usize = 900;
    // At least 900 changes, and on until the daemons have evaluated automation 200 times (a
    // loaded machine evaluates less often in the same time), 3,000 at most.
    const EVALUATIONS: i64 = 200;
    const MOST_CHANGES: usize = 3000;
    let mut written = 1;
    for rows in 2..=MOST_CHANGES + 1 {
        if rows > CHANGES + 1
            && rows % 50 == 0
            && project.store_scalar("SELECT COUNT(*) FROM automation_evaluations") >= EVALUATIONS
        {
            break;
        }
        project.write("raw.csv", &csv(rows));
        written = rows;
        std::thread::sleep(Duration::from_millis(80));
        if rows == CHANGES / 2 {
            let caught = wait_until(Duration::from_secs(10), || {
                project.store_scalar("SELECT COUNT(*) FROM runs WHERE status = 'running'") > 0
            });
            assert!(caught, "no run was running to kill:\n{}", first.log());
            first
                .child
                .kill()
                .expect("SIGKILL the daemon that runs automation");
            first.child.wait().expect("wait");
        }
    }
    let last = format!("| {written} | {written} |");
    assert!(
        wait_until(Duration::from_secs(60), || project
            .ok(&["preview", "clean"])
            .stdout
            .contains(&last)
            && fresh(&project, &["clean"])),
        "the surviving daemon did not follow to the last change:\n{}",
        second.log()
    );
    assert!(second.log().contains(owns), "{}", second.log());

    // No version of raw was materialized twice.
    let out = project.ok(&["history", "clean", "--json", "--limit", "10000"]);
    let history: Vec<Value> = serde_json::from_str(&out.stdout).expect("history --json");
    let mut seen = std::collections::HashSet::new();
    for m in &history {
        let input = m["inputs"][0]["data_version"]
            .as_str()
            .expect("raw's version")
            .to_owned();
        assert!(
            seen.insert(input.clone()),
            "raw version {input} materialized twice:\n{history:#?}"
        );
    }
    assert!(
        history.len() >= 10,
        "only {} materializations",
        history.len()
    );
    let runs = project.store_scalar("SELECT COUNT(*) FROM runs");
    let evaluations = project.store_scalar("SELECT COUNT(*) FROM automation_evaluations");
    let died = project.store_scalar("SELECT COUNT(*) FROM runs WHERE error = 'process died'");
    eprintln!(
        "two daemons: {} changes, {evaluations} evaluations, {runs} runs ({died} of the \
         killed daemon failed as process died), {} materializations of clean",
        written - 1,
        history.len()
    );
    assert!(evaluations >= EVALUATIONS, "{evaluations} evaluations");
    assert!(second.terminate().is_some_and(|s| s.success()));
}
