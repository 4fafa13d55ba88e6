//! The web view in a real headless Chromium (Debian's package, driven by playwright-core from
//! npm; `tests/run.sh` installs both) against `freshet serve` on the demo project on a loopback
//! port. The browser side is `tests/e2e/web.test.mjs`; screenshots go to
//! `target/test-artifacts/web/`.

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

#[test]
fn web_view_shows_lineage_causes_and_materializes_without_reload() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        Path::new(&chromium).exists()
            && root.join("tests/e2e/node_modules/playwright-core").exists(),
        "the browser tests need Chromium ({chromium}) and playwright-core (tests/e2e/node_modules): \
         run them with tests/run.sh, which installs both"
    );

    let project = TempProject::demo_with_stale_revenue();

    let mut child = project
        .command()
        .args(["serve", "--addr", "127.0.0.1:0"])
        .env("FRESHET_TOKEN", TOKEN)
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
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let artifacts = root.join("target/test-artifacts/web");
    // Screenshots of an earlier run must not count for this one.
    let _ = std::fs::remove_dir_all(&artifacts);
    let mut node = Command::new("node")
        .args(["--test", "tests/e2e/web.test.mjs"])
        .current_dir(&root)
        .env("FRESHET_URL", &url)
        .env("FRESHET_TOKEN", TOKEN)
        .env("FRESHET_STALE_ASSET", "daily_revenue")
        .env("FRESHET_PROJECT_DIR", project.path())
        .env("CHROMIUM", &chromium)
        .env("ARTIFACTS", &artifacts)
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
    assert!(status.success(), "browser tests failed:\n{report}");
    for shot in [
        "graph.png",
        "asset.png",
        "run.png",
        "version-preview.png",
        "metadata.png",
        "automation.png",
        "project-error.png",
    ] {
        let size = std::fs::metadata(artifacts.join(shot))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(size > 10_000, "screenshot {shot} missing or empty");
    }
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
