//! The web view in a real headless Chromium (Debian's package, driven by playwright-core from
//! npm; `tests/run.sh` installs both) against `freshet serve` on the demo project: on a loopback
//! port (`tests/e2e/web.test.mjs`, screenshots in `target/test-artifacts/web/`), and on 0.0.0.0
//! behind its tokens (`tests/e2e/remote.test.mjs`, in `target/test-artifacts/web-remote/`).

use std::io::{BufRead, BufReader, Read as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::TempProject;

const TOKEN: &str = "e2e-token-0123456789abcdef";

/// Kills the server when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The browser tests need Chromium and playwright-core; says how to get them if they are missing.
fn browser() -> String {
    let root = repo_root();
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        Path::new(&chromium).exists()
            && root.join("tests/e2e/node_modules/playwright-core").exists(),
        "the browser tests need Chromium ({chromium}) and playwright-core (tests/e2e/node_modules): \
         run them with tests/run.sh, which installs both"
    );
    chromium
}

fn repo_root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `freshet serve --addr ADDR` on `project` with `env`; the server, the URL it says it serves,
/// and the rest of what it says.
fn serve(
    project: &TempProject,
    addr: &str,
    env: &[(&str, &str)],
) -> (Server, String, std::sync::mpsc::Receiver<String>) {
    let mut child = project
        .command()
        .args(["serve", "--addr", addr])
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start freshet serve");
    let stderr = child.stderr.take().expect("stderr");
    let server = Server(child);
    // The first line says where it listens; the rest is drained so the server never blocks.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("serve: {line}");
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let url = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("freshet serve says where it listens within 60 s");
        if let Some(rest) = line.strip_prefix("freshet: serving ") {
            break rest.split_whitespace().next().expect("a URL").to_owned();
        }
    };
    (server, url, rx)
}

/// Runs one browser test file with `env`, bounded to 5 minutes; panics with its report if it fails.
fn run_browser_tests(script: &str, env: &[(&str, &str)]) {
    let mut node = Command::new("node")
        .args(["--test", script])
        .current_dir(repo_root())
        .envs(env.iter().copied())
        .env("CHROMIUM", browser())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run node");
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(node.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(node.stderr.take().map(|p| Box::new(p) as _));
    // Bounded: the browser tests' own waits are 15 s each; give the whole 5 minutes.
    let deadline = Instant::now() + Duration::from_secs(300);
    while node.try_wait().expect("wait for node").is_none() {
        if Instant::now() > deadline {
            let _ = node.kill();
            panic!("the browser tests did not finish within 5 minutes");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = node.wait().expect("node exit");
    let report = format!(
        "{}\n{}",
        stdout.join().unwrap_or_default(),
        stderr.join().unwrap_or_default()
    );
    assert!(status.success(), "browser tests {script} failed:\n{report}");
}

fn assert_screenshots(artifacts: &Path, shots: &[&str]) {
    for shot in shots {
        let size = std::fs::metadata(artifacts.join(shot))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(size > 10_000, "screenshot {shot} missing or empty");
    }
}

#[test]
fn web_view_shows_lineage_causes_and_materializes_without_reload() {
    browser();
    let project = TempProject::demo_with_stale_revenue();
    let (server, url, rx) = serve(&project, "127.0.0.1:0", &[("FRESHET_TOKEN", TOKEN)]);
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let artifacts = repo_root().join("target/test-artifacts/web");
    // Screenshots of an earlier run must not count for this one.
    let _ = std::fs::remove_dir_all(&artifacts);
    run_browser_tests(
        "tests/e2e/web.test.mjs",
        &[
            ("FRESHET_URL", &url),
            ("FRESHET_TOKEN", TOKEN),
            ("FRESHET_STALE_ASSET", "daily_revenue"),
            (
                "FRESHET_PROJECT_DIR",
                project.path().to_str().expect("utf-8"),
            ),
            ("ARTIFACTS", artifacts.to_str().expect("utf-8")),
        ],
    );
    assert_screenshots(
        &artifacts,
        &[
            "graph.png",
            "asset.png",
            "run.png",
            "version-preview.png",
            "metadata.png",
            "automation.png",
            "project-error.png",
        ],
    );
    drop(server);
    // Everything the server said, to its end: a token given by the environment is never shown.
    let said: Vec<String> = rx.iter().collect();
    assert!(
        !said.iter().any(|l| l.contains(TOKEN)),
        "the server printed its token: {said:?}"
    );

    // What the browser did is in the store: the run it started materialized daily_revenue.
    let status = project.status();
    assert_eq!(status["daily_revenue"]["status"], "fresh");
}

/// The status of a request sent over a socket, HTTP/1.1, with `headers` (each `Name: value`).
fn status_of(addr: &str, method: &str, path: &str, headers: &[String]) -> u16 {
    use std::io::Write as _;
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str("Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}");
    stream.write_all(request.as_bytes()).expect("send");
    let mut first = String::new();
    BufReader::new(stream)
        .read_line(&mut first)
        .expect("status line");
    first
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: no status in {first:?}"))
}

/// `freshet serve --addr 0.0.0.0:PORT`, reached on 127.0.0.1: every route refuses a request
/// without a token, over a real socket; in the browser the page asks for one, reads with the read
/// token, and materializes with the action token.
#[test]
fn beyond_loopback_every_route_needs_a_token_and_the_page_works_with_one() {
    // Fresh tokens: this server listens on every interface while the test runs.
    let action = format!("act-{}", uuid::Uuid::new_v4().simple());
    let read = format!("read-{}", uuid::Uuid::new_v4().simple());
    browser();
    let project = TempProject::demo_with_stale_revenue();
    let (server, url, rx) = serve(
        &project,
        "0.0.0.0:0",
        &[("FRESHET_TOKEN", &action), ("FRESHET_READ_TOKEN", &read)],
    );
    let port = url
        .strip_prefix("http://0.0.0.0:")
        .and_then(|rest| rest.trim_end_matches('/').parse::<u16>().ok())
        .unwrap_or_else(|| panic!("not a 0.0.0.0 URL: {url}"));
    let addr = format!("127.0.0.1:{port}");
    let mut routes: Vec<(String, String)> = freshet_server::serve::ROUTES
        .iter()
        .map(|(method, path)| {
            let path = path
                .replace("{key}", "daily_revenue")
                .replace("{id}", "01a20000-0000-7000-8000-000000000000");
            ((*method).to_owned(), path)
        })
        .collect();
    for page in ["/", "/app.js", "/style.css", "/metrics", "/no/such/page"] {
        routes.push(("GET".to_owned(), page.to_owned()));
    }
    for (method, path) in &routes {
        assert_eq!(
            status_of(&addr, method, path, &[]),
            401,
            "{method} {path} without a token"
        );
        let wrong = ["Authorization: Bearer not-this-servers-token".to_owned()];
        assert_eq!(
            status_of(&addr, method, path, &wrong),
            403,
            "{method} {path} with a wrong token"
        );
    }
    assert_eq!(
        status_of(
            &addr,
            "GET",
            "/metrics",
            &[format!("Authorization: Bearer {read}")]
        ),
        200
    );

    let artifacts = repo_root().join("target/test-artifacts/web-remote");
    let _ = std::fs::remove_dir_all(&artifacts);
    let base = format!("http://{addr}");
    run_browser_tests(
        "tests/e2e/remote.test.mjs",
        &[
            ("FRESHET_URL", &base),
            ("FRESHET_TOKEN", &action),
            ("FRESHET_READ_TOKEN", &read),
            ("FRESHET_STALE_ASSET", "daily_revenue"),
            ("ARTIFACTS", artifacts.to_str().expect("utf-8")),
        ],
    );
    assert_screenshots(
        &artifacts,
        &["sign-in.png", "remote-read.png", "remote-action.png"],
    );
    drop(server);
    let said: Vec<String> = rx.iter().collect();
    assert!(
        !said
            .iter()
            .any(|l| l.contains(&action) || l.contains(&read)),
        "the server printed a token: {said:?}"
    );
    assert_eq!(project.status()["daily_revenue"]["status"], "fresh");
}

#[test]
fn a_partitioned_asset_shows_its_health_bar_ranges_and_a_mini_bar() {
    browser();
    let project = TempProject::with_files(&[
        (
            "freshet.toml",
            "[project]\nname = \"t\"\n[partitions.daily]\nevery = \"day\"\nstart = \"2024-01-01\"\n",
        ),
        (
            "sql/raw.sql",
            "SELECT to_timestamp_seconds(1704067200 + value * 21600) AS ts, value AS n FROM range(0, 40)",
        ),
        (
            "sql/events.sql",
            "-- @partitions: daily\nSELECT ts, n FROM raw WHERE ts >= $start AND ts < $end",
        ),
        (
            "sql/totals.sql",
            "-- @partitions: daily\nSELECT $partition_key AS day, sum(n) AS total FROM events",
        ),
    ]);
    project.ok(&["materialize", "raw"]);
    project.ok(&[
        "materialize",
        "events",
        "totals",
        "--range",
        "2024-01-01..2024-01-10",
    ]);
    // Days 3 and 4 of events get new data: those days of totals are stale.
    project.write(
        "sql/events.sql",
        "-- @partitions: daily\nSELECT ts, CASE WHEN $partition_key IN ('2024-01-03', '2024-01-04') \
         THEN n + 1 ELSE n END AS n FROM raw WHERE ts >= $start AND ts < $end",
    );
    project.ok(&["materialize", "events", "--range", "2024-01-01..2024-01-10"]);
    let (_server, url, _rx) = serve(&project, "127.0.0.1:0", &[("FRESHET_TOKEN", TOKEN)]);
    let artifacts = repo_root().join("target/test-artifacts/web-partitions");
    let _ = std::fs::remove_dir_all(&artifacts);
    run_browser_tests(
        "tests/e2e/partitions.test.mjs",
        &[
            ("FRESHET_URL", &url),
            ("FRESHET_ASSET", "totals"),
            ("FRESHET_STALE", "2024-01-03..2024-01-04"),
            ("FRESHET_FRESH_FIRST", "2024-01-01"),
            ("ARTIFACTS", artifacts.to_str().expect("utf-8")),
        ],
    );
    assert_screenshots(&artifacts, &["partitions.png", "partitions-opened.png"]);
}
