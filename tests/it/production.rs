//! Production concerns through the real binary: databases Freshet must refuse (each one line,
//! left as it was), the retention of run logs, and logs as JSON lines.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{TempProject, on_postgres, postgres_server};

const PROJECT: &[(&str, &str)] = &[
    ("freshet.toml", "[project]\nname = \"t\"\n"),
    ("sql/one.sql", "SELECT 1 AS n"),
];

/// Asserts `out` failed with exactly one line starting with `start`, and returns it.
fn one_error_line(out: &crate::support::Output, start: &str) -> String {
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.starts_with(start), "{}", out.stderr);
    out.stderr.trim_end().to_owned()
}

#[test]
fn an_unreachable_server_or_wrong_credentials_are_one_line_without_the_password() {
    let project = TempProject::with_files(PROJECT);
    let started = Instant::now();
    let out = project.run(&[
        "--database",
        "postgres://freshet:hunter2@127.0.0.1:1/meta",
        "status",
    ]);
    let line = one_error_line(
        &out,
        "error: cannot open metadata database postgres://freshet:***@127.0.0.1:1/meta: ",
    );
    assert!(!line.contains("hunter2"), "{line}");
    eprintln!("unreachable server refused after {:?}", started.elapsed());

    let Some(server) = postgres_server() else {
        return;
    };
    let mut wrong = url::Url::parse(&server).expect("URL");
    wrong
        .set_password(Some("not-the-password"))
        .expect("password");
    let out = project.run(&["--database", wrong.as_str(), "status"]);
    let line = one_error_line(
        &out,
        "error: cannot open metadata database postgres://postgres:***@127.0.0.1:",
    );
    assert!(line.contains("password authentication failed"), "{line}");
    assert!(!line.contains("not-the-password"), "{line}");
    // And a database that does not exist.
    let mut missing = url::Url::parse(&server).expect("URL");
    missing.set_path("no_such_database");
    let out = project.run(&["--database", missing.as_str(), "status"]);
    let line = one_error_line(
        &out,
        "error: cannot open metadata database postgres://postgres:***@",
    );
    assert!(line.contains("no_such_database"), "{line}");
}

#[test]
fn a_corrupt_or_foreign_sqlite_file_is_refused_and_left_as_it_was() {
    let project = TempProject::with_files(PROJECT);
    let junk = "not a database, whatever the name says\n".repeat(100);
    project.write("junk.db", &junk);
    let out = project.run(&["--database", "junk.db", "materialize"]);
    let line = one_error_line(&out, "error: cannot open metadata database sqlite://");
    assert!(line.ends_with("junk.db: the file is not a database (it is not a SQLite file); point --database at a new file to start a new store"), "{line}");
    assert!(project.read("junk.db") == junk, "junk.db changed");

    // A SQLite database of something else.
    let foreign = project.path().join("other.db");
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(async {
                    use sqlx::Connection;
                    sqlx::any::install_default_drivers();
                    let url = format!("sqlite://{}?mode=rwc", foreign.display());
                    let mut conn = sqlx::AnyConnection::connect(&url).await.expect("connect");
                    sqlx::query("CREATE TABLE invoices (id BIGINT)")
                        .execute(&mut conn)
                        .await
                        .expect("create");
                    let _ = conn.close().await;
                })
        });
    });
    let before = std::fs::read(&foreign).expect("read");
    let out = project.run(&["--database", "other.db", "status"]);
    let line = one_error_line(&out, "error: cannot open metadata database sqlite://");
    assert!(
        line.contains(
            "it is not a Freshet metadata database (it holds other tables, such as `invoices`)"
        ),
        "{line}"
    );
    assert!(
        std::fs::read(&foreign).expect("read") == before,
        "other.db changed"
    );
    let names: Vec<_> = std::fs::read_dir(project.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("other.db"))
        .collect();
    assert_eq!(names, ["other.db"], "no WAL or journal file was left");
}

#[test]
fn a_store_written_by_a_newer_freshet_is_refused_and_left_as_it_was() {
    let project = TempProject::with_files(PROJECT);
    project.ok(&["materialize"]);
    project.store_execute(if on_postgres() {
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (29991231000001, 'from a newer freshet', TRUE, decode('00', 'hex'), 0)"
    } else {
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (29991231000001, 'from a newer freshet', TRUE, X'00', 0)"
    });
    let runs = project.store_scalar("SELECT COUNT(*) FROM runs");
    for command in [&["status"][..], &["materialize"], &["gc"]] {
        let out = project.run(command);
        let line = one_error_line(&out, "error: cannot open metadata database ");
        assert!(
            line.ends_with("its schema (version 29991231000001) is newer than this freshet's (version 20261203000008); it was written by a newer Freshet: upgrade freshet to use it"),
            "{line}"
        );
    }
    assert_eq!(
        project.store_scalar("SELECT COUNT(*) FROM runs"),
        runs,
        "nothing was recorded"
    );
    assert_eq!(
        project.store_scalar("SELECT COUNT(*) FROM _sqlx_migrations"),
        9
    );
}

#[test]
fn gc_removes_the_log_lines_of_runs_that_ended_before_the_retention() {
    let project = TempProject::with_files(&[
        (
            "freshet.toml",
            "[project]\nname = \"t\"\n[gc]\nrun_logs = \"2s\"\n",
        ),
        ("sql/one.sql", "SELECT 1 AS n"),
    ]);
    project.ok(&["materialize"]);
    let lines = project.store_scalar("SELECT COUNT(*) FROM run_logs");
    assert!(lines > 0, "a run records log lines");
    std::thread::sleep(Duration::from_millis(2100));
    // A run that ended just now keeps its lines.
    project.write("sql/one.sql", "SELECT 2 AS n");
    project.ok(&["materialize"]);
    let dry = project.ok(&["gc", "--dry-run"]);
    assert!(
        dry.stderr.contains(&format!(
            "freshet: would remove {lines} log lines of 1 runs that ended more than 2s ago"
        )),
        "{}",
        dry.stderr
    );
    assert_eq!(
        project.store_scalar("SELECT COUNT(*) FROM run_logs"),
        2 * lines
    );
    let out = project.ok(&["gc"]);
    assert!(
        out.stderr.contains(&format!(
            "freshet: removed {lines} log lines of 1 runs that ended more than 2s ago"
        )),
        "{}",
        out.stderr
    );
    assert_eq!(project.store_scalar("SELECT COUNT(*) FROM run_logs"), lines);
    // The run itself stays, with how it ended.
    assert_eq!(
        project.store_scalar("SELECT COUNT(*) FROM runs WHERE status = 'succeeded'"),
        2
    );

    project.write(
        "freshet.toml",
        "[project]\nname = \"t\"\n[gc]\nrun_logs = \"soon\"\n",
    );
    let out = project.run(&["gc"]);
    one_error_line(&out, "error: ");
    assert!(
        out.stderr
            .contains("[gc] run_logs: invalid duration \"soon\""),
        "{}",
        out.stderr
    );
}

#[test]
fn log_format_json_writes_one_object_per_line() {
    let project = TempProject::with_files(PROJECT);
    let mut child = project
        .command()
        .args(["--log-format", "json", "serve", "--addr", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start freshet serve");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut logged = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if line.starts_with('{') {
            logged = Some(line);
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let line = logged.expect("a JSON log line within 30 s");
    let value: Value = serde_json::from_str(&line).expect("a JSON object");
    assert_eq!(value["level"], "INFO", "{line}");
    assert_eq!(
        value["message"], "this process runs automation on the store",
        "{line}"
    );
    assert!(
        value["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{line}"
    );
    assert!(
        value["target"]
            .as_str()
            .is_some_and(|t| t.starts_with("freshet")),
        "{line}"
    );
}
