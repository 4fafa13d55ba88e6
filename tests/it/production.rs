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
    // This freshet's migrations: its version is the newest one's.
    let versions: Vec<u64> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations/sqlite"))
            .expect("migrations")
            .filter_map(|e| {
                let name = e.ok()?.file_name().to_string_lossy().into_owned();
                name.split('_').next()?.parse::<u64>().ok()
            })
            .collect();
    let ours = versions.iter().max().expect("a migration");
    let expected = format!(
        "its schema (version 29991231000001) is newer than this freshet's (version {ours}); \
         it was written by a newer Freshet: upgrade freshet to use it"
    );
    for command in [&["status"][..], &["materialize"], &["gc"]] {
        let out = project.run(command);
        let line = one_error_line(&out, "error: cannot open metadata database ");
        assert!(line.ends_with(&expected), "{line}");
    }
    assert_eq!(
        project.store_scalar("SELECT COUNT(*) FROM runs"),
        runs,
        "nothing was recorded"
    );
    // Ours and the newer one, nothing more.
    assert_eq!(
        project.store_scalar("SELECT COUNT(*) FROM _sqlx_migrations"),
        versions.len() as i64 + 1
    );
}

#[test]
fn gc_removes_the_log_lines_of_runs_that_ended_before_the_retention() {
    let project = TempProject::with_files(&[
        (
            "freshet.toml",
            "[project]\nname = \"t\"\n[gc]\nrun_logs = \"1h\"\n",
        ),
        ("sql/one.sql", "SELECT 1 AS n"),
    ]);
    project.ok(&["materialize"]);
    let lines = project.store_scalar("SELECT COUNT(*) FROM run_logs");
    assert!(lines > 0, "a run records log lines");
    // The first run ended two hours ago; the second, just now, keeps its lines.
    project.store_execute("UPDATE runs SET finished_at = finished_at - 7200000000");
    project.write("sql/one.sql", "SELECT 2 AS n");
    project.ok(&["materialize"]);
    let dry = project.ok(&["gc", "--dry-run"]);
    assert!(
        dry.stderr.contains(&format!(
            "freshet: would remove {lines} log lines of 1 runs that ended more than 1h 0m ago"
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
            "freshet: removed {lines} log lines of 1 runs that ended more than 1h 0m ago"
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

    for (setting, error) in [
        ("soon", "[gc] run_logs: invalid duration \"soon\""),
        (
            "99999999999999d",
            "[gc] run_logs: \"99999999999999d\" is too long (at most 36500d)",
        ),
    ] {
        project.write(
            "freshet.toml",
            &format!("[project]\nname = \"t\"\n[gc]\nrun_logs = \"{setting}\"\n"),
        );
        let out = project.run(&["gc"]);
        one_error_line(&out, "error: ");
        assert!(out.stderr.contains(error), "{}", out.stderr);
    }
    project.write("freshet.toml", "[project]\nname = \"t\"\n");
    assert_eq!(
        project.store_scalar("SELECT COUNT(*) FROM run_logs"),
        lines,
        "a refused gc removes nothing"
    );
}

#[test]
fn log_format_json_writes_one_object_per_line() {
    let project = TempProject::with_files(PROJECT);
    // A token it would generate would be written to the logs: refused.
    let out = project.run(&["--log-format", "json", "serve", "--addr", "127.0.0.1:0"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    let refusal: Value =
        serde_json::from_str(out.stderr.trim()).expect("the error is a JSON object");
    assert_eq!(refusal["level"], "ERROR");
    assert_eq!(
        refusal["message"],
        "with --log-format json, set FRESHET_TOKEN (or --token): a generated token would be written to the logs"
    );

    let mut child = project
        .command()
        .args(["--log-format", "json", "serve", "--addr", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .env("FRESHET_TOKEN", "json-logs-token-0123456789")
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
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let done = line.contains("this process runs automation on the store");
        seen.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let objects: Vec<Value> = seen
        .iter()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not a JSON object: {line}"))
        })
        .collect();
    let logged = objects
        .iter()
        .find(|v| v["message"] == "this process runs automation on the store")
        .unwrap_or_else(|| panic!("no automation line within 30 s: {seen:#?}"));
    assert_eq!(logged["level"], "INFO");
    assert!(
        logged["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{logged}"
    );
    assert!(
        logged["target"]
            .as_str()
            .is_some_and(|t| t.starts_with("freshet")),
        "{logged}"
    );
    assert!(
        objects.iter().any(|v| v["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("serving http://127.0.0.1:"))),
        "{seen:#?}"
    );
}

/// An empty (0-byte) SQLite file beside outputs of an earlier store is refused, not taken for a
/// new store that would orphan them; with no outputs it is a new store.
#[test]
fn an_empty_store_file_beside_outputs_is_refused() {
    let project = TempProject::with_files(PROJECT);
    project.ok(&["--database", "store.db", "materialize"]);
    let outputs = crate::support::files_under(&project.path().join(".freshet/data"));
    assert!(!outputs.is_empty());
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(project.path().join(format!("store.db{suffix}")));
    }
    project.write("store.db", "");
    for command in [&["status"][..], &["materialize"]] {
        let mut args = vec!["--database", "store.db"];
        args.extend_from_slice(command);
        let out = project.run(&args);
        let line = one_error_line(&out, "error: cannot open metadata database sqlite://");
        assert!(
            line.ends_with(".freshet/data/ holds outputs an earlier store recorded; restore the database file, or to start over remove both"),
            "{line}"
        );
    }
    assert_eq!(project.read("store.db"), "", "the file is left as it was");
    assert_eq!(
        crate::support::files_under(&project.path().join(".freshet/data")),
        outputs
    );

    // Without outputs, an empty file is a new store.
    let fresh = TempProject::with_files(PROJECT);
    fresh.write("store.db", "");
    fresh.ok(&["--database", "store.db", "materialize"]);
}

/// Paths no write reaches, even as root (whose writes file modes do not stop): read-only modes
/// and, for root, the immutable attribute. Undone on drop.
struct ReadOnly(Vec<std::path::PathBuf>);

impl ReadOnly {
    fn new(paths: Vec<std::path::PathBuf>) -> Self {
        for path in &paths {
            set_read_only(path, true);
        }
        if is_root() {
            let status = std::process::Command::new("chattr")
                .arg("+i")
                .args(&paths)
                .status()
                .expect("chattr runs");
            assert!(
                status.success(),
                "chattr +i failed: the test needs a file system with the immutable attribute"
            );
        }
        Self(paths)
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        if is_root() {
            let _ = std::process::Command::new("chattr")
                .arg("-i")
                .args(&self.0)
                .status();
        }
        for path in &self.0 {
            set_read_only(path, false);
        }
    }
}

fn set_read_only(path: &std::path::Path, read_only: bool) {
    let mut permissions = std::fs::metadata(path).expect("exists").permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    permissions.set_readonly(read_only);
    std::fs::set_permissions(path, permissions).expect("set permissions");
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// A store no one may write (file and folder) still serves `status`, `plan`, `preview` and
/// `history`, which open it to read only; a command that writes is refused in one line; the
/// file is left as it was.
#[test]
fn a_read_only_store_serves_the_commands_that_only_read() {
    let project = TempProject::with_files(&[
        (
            "freshet.toml",
            "[project]\nname = \"t\"\n\n[sources.raw]\npath = \"raw.csv\"\n",
        ),
        ("raw.csv", "id,amount\n1,2.5\n"),
        (
            "sql/doubled.sql",
            "SELECT id, amount * 2 AS doubled FROM raw",
        ),
    ]);
    let with_store = |args: &[&str]| {
        let mut all = vec!["--database", "store/freshet.db"];
        all.extend_from_slice(args);
        all.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let run = |args: &[&str]| {
        let args = with_store(args);
        project.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let ok = |args: &[&str]| {
        let out = run(args);
        assert!(out.success, "{args:?}: {}", out.stderr);
        out
    };
    ok(&["materialize"]);
    let folder = project.path().join("store");
    let file = folder.join("freshet.db");
    for suffix in ["-wal", "-shm"] {
        assert!(
            !folder.join(format!("freshet.db{suffix}")).exists(),
            "{suffix} removed as the last connection closed"
        );
    }
    let bytes = std::fs::read(&file).expect("the store file");
    // Where it could, a read leaves nothing behind either.
    ok(&["status"]);
    let mut left = std::fs::read_dir(&folder)
        .expect("the store folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect::<Vec<_>>();
    left.sort();
    assert_eq!(left, ["freshet.db"], "no -wal or -shm left by a read");
    let guard = ReadOnly::new(vec![file.clone(), folder.clone()]);

    let status = ok(&["status"]).stdout;
    let row = status
        .lines()
        .find(|l| l.starts_with("doubled "))
        .expect("doubled listed");
    assert!(row.contains(" fresh "), "{status}");
    let one: Value =
        serde_json::from_str(&ok(&["status", "doubled", "--json"]).stdout).expect("JSON");
    assert_eq!(one["status"], "fresh");
    let plan = ok(&["plan"]);
    assert!(
        plan.stdout.starts_with("nothing to materialize\n"),
        "{plan:?}"
    );
    assert!(ok(&["preview", "doubled"]).stdout.contains("| 5.0 "));
    assert!(!ok(&["history", "doubled"]).stdout.is_empty());

    let out = run(&["materialize", "--stale"]);
    let line = one_error_line(&out, "error: cannot open metadata database sqlite://");
    assert!(
        line.ends_with(
            "; if the file or its folder is read-only, only status, plan, preview and history can \
             use it (and only while its schema is this freshet's)"
        ),
        "{line}"
    );
    drop(guard);
    assert_eq!(
        std::fs::read(&file).expect("the store file"),
        bytes,
        "the store is unchanged"
    );
}
